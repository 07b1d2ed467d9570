/* long-engine-minimal.c — the `minimal` tier (Debian bookworm) booted by
 * the engine in a real VM: bash as user lohar with passwordless sudo, the
 * promised tools present, a login shell on a PTY. Runs in `make test-long`
 * (its image takes a minute of debootstrap to build).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "fileops.h"
#include "helpers.h"
#include "log.h"
#include "loop.h"

static char *data;
static struct engine *eng;

static int setup(void **state UNUSED)
{
	struct err e = ERR_INIT;
	const char *img = getenv("BHATTI_IMAGES");
	log_init("long-minimal", LOG_WARN);
	if (loop_init() < 0 || fileops_init(&e) < 0)
		return -1;
	data = test_tmpdir("minimal");
	struct engine_config cfg = { .data_dir = data, .images_dir = img ? img : "build/images" };
	if (engine_new(&cfg, NULL, NULL, &eng, &e) < 0) {
		fprintf(stderr, "engine: %s\n", err_str(&e));
		return -1;
	}
	return 0;
}

static void destroy_each(struct vm *vm, void *arg UNUSED)
{
	vm_destroy_sync(vm, NULL);
}

static int teardown(void **state UNUSED)
{
	engine_each(eng, destroy_each, NULL);
	engine_free(eng);
	test_rmtree(data);
	free(data);
	return 0;
}

static char *run(struct vm *vm, const char *cmd, int *ret_code)
{
	char *argv[] = { (char *)"bash", (char *)"-lc", (char *)cmd, NULL };
	struct proto_exec req = { .argv = argv, .cwd = (char *)"", .output_path = (char *)"" };
	struct ac_exec_result r;
	struct err e = ERR_INIT;
	if (ac_exec(vm_agent(vm), &req, NULL, 0, &r, 120000, &e) < 0)
		fail_msg("exec: %s", err_str(&e));
	*ret_code = r.exit_code;
	if (r.exit_code)
		fprintf(stderr, "stderr: %s\n", r.err.data);
	buf_release(&r.err);
	return buf_detach(&r.out, NULL);
}

static void test_minimal_bash_sudo(void **state UNUSED)
{
	struct err e = ERR_INIT;
	struct vm *vm;
	struct vm_spec spec = { .id = "deb", .image = "minimal" };
	if (vm_create_sync(eng, &spec, &vm, &e) < 0)
		fail_msg("create: %s", err_str(&e));
	int code;
	char *out = run(vm, "id; sudo true && echo sudo-ok", &code);
	assert_int_equal(code, 0);
	assert_non_null(strstr(out, "uid=1000(lohar) gid=1000(lohar)"));
	assert_non_null(strstr(out, "sudo-ok"));
	free(out);
	out = run(vm, "for t in bash sudo curl ps ip less ssh; do command -v $t >/dev/null || echo missing $t; done; "
		      "test -f /etc/ssl/certs/ca-certificates.crt && echo certs; stat -c %U /workspace; "
		      "echo $HOME $SHELL; sudo id -u", &code);
	assert_int_equal(code, 0);
	assert_null(strstr(out, "missing"));
	assert_non_null(strstr(out, "certs\nlohar\n/home/lohar /bin/bash\n0\n"));
	free(out);
	/* the sandbox's name resolves (sudo warns when it does not) through
	 * NSS myhostname, and /etc/hostname reads the kernel's name: lohar
	 * writes no file for it */
	out = run(vm, "sudo true 2>&1; hostname; cat /etc/hostname; getent hosts \"$(hostname)\"", &code);
	assert_int_equal(code, 0);
	assert_null(strstr(out, "unable to resolve"));
	assert_non_null(strstr(out, "deb\ndeb\n"));
	assert_non_null(strstr(out, " deb"));
	free(out);
	assert_int_equal(vm_destroy_sync(vm, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_bash_sudo),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
