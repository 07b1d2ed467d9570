/* test-agent-init.c — unit tests for the parts of lohar's PID-1 code that
 * can run outside a VM (agent/init.c): finding the agent's virtio-serial
 * port by name in a sysfs tree. The tree here is a directory the test
 * builds (the only stand-in: there is no virtio-serial device on a host);
 * the real port is exercised by the engine tests inside VMs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "helpers.h"

struct agent agent; /* lohar's global (normally in agent/main.c) */
void agent_touch(void) {}

static void add_port(const char *root, const char *dev, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/class", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/class/virtio-ports", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/class/virtio-ports/%s", root, dev);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/class/virtio-ports/%s/name", root, dev);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, name, strlen(name)), (ssize_t)strlen(name));
	close(fd);
}

static void test_find_vport_by_name(void **state UNUSED)
{
	char *root = test_tmpdir("sysfs");
	char path[64];
	struct err e = ERR_INIT;
	add_port(root, "vport0p1", "org.qemu.guest_agent.0\n");
	add_port(root, "vport0p2", "bhatti.agent\n");
	add_port(root, "vport1p1", "bhatti.agent.other\n");
	assert_int_equal(init_find_vport(root, "bhatti.agent", path, sizeof(path), &e), 0);
	assert_string_equal(path, "/dev/vport0p2");
	assert_int_equal(init_find_vport(root, "nope", path, sizeof(path), &e), -ENOENT);
	assert_string_equal(e.msg, "no virtio-serial port named 'nope'");
	test_rmtree(root);
	free(root);
}

static void test_find_vport_without_ports(void **state UNUSED)
{
	char *root = test_tmpdir("sysfs-empty");
	char path[64];
	struct err e = ERR_INIT;
	assert_int_equal(init_find_vport(root, "bhatti.agent", path, sizeof(path), &e), -ENOENT);
	assert_non_null(strstr(e.msg, "no virtio-serial ports"));
	test_rmtree(root);
	free(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find_vport_by_name),
		cmocka_unit_test(test_find_vport_without_ports),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
