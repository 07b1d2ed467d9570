/* test-fileops.c — cold snapshots on disk (daemon/fileops.c, the formats of
 * daemon/atrest.c) without a VM: a "guest memory" file and a device state
 * saved against a base and loaded back, plaintext and encrypted; the
 * encrypted files hold no plaintext and stay sparse (only the pages that
 * differ are written); the load over a spare (a file holding the base);
 * tampering (a page, the bitmap, the trailer, the state), a wrong key, a
 * state from another snapshot and a plaintext snapshot where a key is
 * expected are all refused (-EBADMSG); a save that fails leaves nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sodium.h>

#include "atrest.h"
#include "buf.h"
#include "fileops.h"
#include "helpers.h"

#define MEM (8u << 20)            /* the "guest's" memory */
#define MARK "the-secret-value-7f3a"

static char *dir;
static uint8_t key[32], other_key[32];

static char *pathf(const char *name)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/%s", dir, name);
	return buf_detach(&b, NULL);
}

static int setup(void **state UNUSED)
{
	if (sodium_init() < 0)
		return -1;
	randombytes_buf(key, sizeof(key));
	randombytes_buf(other_key, sizeof(other_key));
	return 0;
}

static int each_setup(void **state UNUSED)
{
	dir = test_tmpdir("fileops");
	return 0;
}

static int each_teardown(void **state UNUSED)
{
	test_rmtree(dir);
	free(dir);
	return 0;
}

/* A sparse file of MEM bytes with the given pages filled (byte = page
 * number + salt), the MARK in the first of them. */
static void make_mem(const char *path, const unsigned *pages, size_t n, unsigned salt)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, MEM), 0);
	char page[4096];
	for (size_t i = 0; i < n; i++) {
		memset(page, (int)((pages[i] + salt) & 0xff) | 1, sizeof(page));
		if (i == 0)
			memcpy(page + 100, MARK, strlen(MARK));
		assert_int_equal(pwrite(fd, page, sizeof(page), (off_t)pages[i] * 4096), 4096);
	}
	close(fd);
}

/* A memfd holding the device state (with the MARK in it). */
static int make_state(size_t len)
{
	int fd = memfd_create("state", MFD_CLOEXEC);
	assert_true(fd >= 0);
	char *p = malloc(len);
	for (size_t i = 0; i < len; i++)
		p[i] = (char)(i * 7 + 3);
	memcpy(p + len / 2, MARK, strlen(MARK));
	assert_int_equal(pwrite(fd, p, len, 0), (ssize_t)len);
	free(p);
	return fd;
}

static char *slurp_fd(int fd, size_t *ret_len)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	char *p = malloc((size_t)st.st_size + 1);
	assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
	*ret_len = (size_t)st.st_size;
	return p;
}

static char *slurp(const char *path, size_t *ret_len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	char *p = slurp_fd(fd, ret_len);
	close(fd);
	return p;
}

static bool holds(const char *path, const char *needle)
{
	size_t n;
	char *p = slurp(path, &n);
	bool found = memmem(p, n, needle, strlen(needle)) != NULL;
	free(p);
	return found;
}

static void assert_same_file(const char *a, const char *b)
{
	size_t na, nb;
	char *pa = slurp(a, &na), *pb = slurp(b, &nb);
	assert_int_equal(na, nb);
	assert_memory_equal(pa, pb, na);
	free(pa);
	free(pb);
}

static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t c;
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x40;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* An all-zero file of MEM bytes to load into. */
static char *fresh_target(const char *name)
{
	char *p = pathf(name);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, MEM), 0);
	close(fd);
	return p;
}

static const unsigned base_pages[] = { 0, 1, 2, 100, 1000, 2047 };
/* the guest changed 1 and 1000, zeroed 2 (a page the delta must write as
 * zeros), and wrote 7, 1024 (the second half) and 2040 */
static const unsigned guest_pages[] = { 1, 7, 1000, 1024, 2040 };

/* base, and mem = base with the guest's changes. */
static void make_pair(char **ret_base, char **ret_mem)
{
	char *base = pathf("base"), *mem = pathf("hot");
	make_mem(base, base_pages, ARRAY_SIZE(base_pages), 0);
	make_mem(mem, base_pages, ARRAY_SIZE(base_pages), 0);
	/* the guest's changes on top */
	int fd = open(mem, O_RDWR);
	char page[4096];
	for (size_t i = 0; i < ARRAY_SIZE(guest_pages); i++) {
		memset(page, 0x5a + (int)i, sizeof(page));
		if (i == 1)
			memcpy(page + 9, MARK, strlen(MARK));
		assert_int_equal(pwrite(fd, page, 4096, (off_t)guest_pages[i] * 4096), 4096);
	}
	memset(page, 0, sizeof(page));
	assert_int_equal(pwrite(fd, page, 4096, 2 * 4096), 4096);
	close(fd);
	*ret_base = base;
	*ret_mem = mem;
}

static void roundtrip(const uint8_t *k)
{
	char *base, *mem, *snap = pathf("snap");
	struct err e = ERR_INIT;
	make_pair(&base, &mem);
	assert_int_equal(mkdir(snap, 0700), 0);
	int sfd = make_state(150000);
	if (fileop_save_snapshot_now(mem, base, sfd, snap, k, &e) < 0)
		fail_msg("save: %s", err_str(&e));
	char *dmem = pathf("snap/mem"), *dstate = pathf("snap/state");
	char *mpart = pathf("snap/mem.part"), *spart = pathf("snap/state.part");
	assert_int_equal(access(mpart, F_OK), -1);
	assert_int_equal(access(spart, F_OK), -1);
	/* only the pages that differ (5 changed, 1 zeroed) are on disk, plus
	 * the bitmap and trailer when encrypted */
	uint64_t limit = (6 + (k ? 2 : 0)) * 4096ull + 4096;
	if (file_allocated(dmem) > limit)
		fail_msg("the delta takes %llu bytes, more than %llu",
			 (unsigned long long)file_allocated(dmem), (unsigned long long)limit);
	/* and what the guest held is there only as ciphertext */
	assert_int_equal(holds(dmem, MARK), !k);
	assert_int_equal(holds(dstate, MARK), !k);

	/* load: base + delta into an all-zero file, the state into a memfd */
	char *target = fresh_target("restored");
	int out = memfd_create("out", MFD_CLOEXEC);
	if (fileop_load_snapshot_now(dstate, dmem, base, target, out, k, &e) < 0)
		fail_msg("load: %s", err_str(&e));
	assert_same_file(mem, target);
	size_t a, b;
	char *sa = slurp_fd(sfd, &a), *sb = slurp_fd(out, &b);
	assert_int_equal(a, b);
	assert_memory_equal(sa, sb, a);
	assert_int_equal(lseek(out, 0, SEEK_CUR), 0); /* where QEMU reads from */
	free(sa);
	free(sb);
	close(out);

	/* over a spare: a file that holds the base already, base NULL */
	char *spare = pathf("spare");
	struct buf cmd = BUF_INIT;
	buf_addf(&cmd, "cp --sparse=always %s %s", base, spare);
	assert_int_equal(system(cmd.data), 0);
	out = memfd_create("out", MFD_CLOEXEC);
	if (fileop_load_snapshot_now(dstate, dmem, NULL, spare, out, k, &e) < 0)
		fail_msg("load over the spare: %s", err_str(&e));
	assert_same_file(mem, spare);
	close(out);
	close(sfd);
	buf_release(&cmd);
	free(base); free(mem); free(snap); free(dmem); free(dstate); free(mpart); free(spart);
	free(target); free(spare);
}

static void test_plaintext_roundtrip(void **state UNUSED)
{
	roundtrip(NULL);
}

static void test_encrypted_roundtrip(void **state UNUSED)
{
	roundtrip(key);
}

/* Save one encrypted snapshot into dir/<name>. */
static void save_to(const char *name, const uint8_t *k, char **ret_base)
{
	char *base, *mem, *snap = pathf(name);
	struct err e = ERR_INIT;
	make_pair(&base, &mem);
	mkdir(snap, 0700);
	int sfd = make_state(5000);
	if (fileop_save_snapshot_now(mem, base, sfd, snap, k, &e) < 0)
		fail_msg("save: %s", err_str(&e));
	close(sfd);
	free(mem);
	free(snap);
	*ret_base = base;
}

/* Load dir/<name>: the return code, the message in e. */
static int load_from(const char *state_name, const char *mem_name, const char *base,
		     const uint8_t *k, struct err *e)
{
	char *st = pathf(state_name), *mem = pathf(mem_name), *target = fresh_target("t");
	int out = memfd_create("out", MFD_CLOEXEC);
	int r = fileop_load_snapshot_now(st, mem, base, target, out, k, e);
	close(out);
	free(st);
	free(mem);
	free(target);
	return r;
}

static void expect_bad(int r, const struct err *e, const char *needle)
{
	assert_int_equal(r, -EBADMSG);
	if (!strstr(e->msg, needle))
		fail_msg("expected '%s' in: %s", needle, e->msg);
}

static void test_tampering_is_refused(void **state UNUSED)
{
	char *base;
	struct err e = ERR_INIT;
	save_to("s", key, &base);
	assert_int_equal(load_from("s/state", "s/mem", base, key, &e), 0);
	/* a wrong key */
	expect_bad(load_from("s/state", "s/mem", base, other_key, &e), &e, "integrity");
	/* a bit of a written page (page 7) */
	char *mem = pathf("s/mem"), *st = pathf("s/state");
	flip_byte(mem, 7 * 4096 + 10);
	expect_bad(load_from("s/state", "s/mem", base, key, &e), &e, "memory snapshot fails");
	flip_byte(mem, 7 * 4096 + 10);
	assert_int_equal(load_from("s/state", "s/mem", base, key, &e), 0);
	/* a page made a hole in the bitmap (page 1: its bit) */
	flip_byte(mem, MEM + 0);
	expect_bad(load_from("s/state", "s/mem", base, key, &e), &e, "memory snapshot fails");
	flip_byte(mem, MEM + 0);
	/* the trailer's nonce */
	flip_byte(mem, (off_t)atrest_mem_file_size(MEM) - 4096 + 45);
	expect_bad(load_from("s/state", "s/mem", base, key, &e), &e, "memory snapshot fails");
	flip_byte(mem, (off_t)atrest_mem_file_size(MEM) - 4096 + 45);
	/* the device state */
	flip_byte(st, 128 + 3);
	expect_bad(load_from("s/state", "s/mem", base, key, &e), &e, "device state fails");
	flip_byte(st, 128 + 3);
	assert_int_equal(load_from("s/state", "s/mem", base, key, &e), 0);
	/* the state of another snapshot of the same sandbox */
	char *base2;
	save_to("s2", key, &base2);
	expect_bad(load_from("s2/state", "s/mem", base, key, &e), &e, "different snapshots");
	free(base2);
	/* a plaintext snapshot where the sandbox has a key */
	save_to("p", NULL, &base2);
	expect_bad(load_from("p/state", "p/mem", base, key, &e), &e, "not an encrypted");
	/* and an encrypted one read as plaintext is no snapshot of that size */
	assert_int_equal(load_from("s/state", "s/mem", base, NULL, &e), -EBADMSG);
	free(base);
	free(base2);
	free(mem);
	free(st);
}

/* A save that cannot finish leaves neither file (nor a .part). */
static void test_failed_save_leaves_nothing(void **state UNUSED)
{
	char *base, *mem, *snap = pathf("snap");
	struct err e = ERR_INIT;
	make_pair(&base, &mem);
	mkdir(snap, 0700);
	int sfd = make_state(5000);
	char *missing = pathf("no-such-base");
	assert_true(fileop_save_snapshot_now(mem, missing, sfd, snap, key, &e) < 0);
	assert_non_null(strstr(e.msg, "no-such-base"));
	/* the device state's fd gone bad (a number no file has) */
	assert_true(fileop_save_snapshot_now(mem, base, 9999, snap, key, &e) < 0);
	struct buf cmd = BUF_INIT;
	buf_addf(&cmd, "test -z \"$(ls -A %s)\"", snap);
	assert_int_equal(system(cmd.data), 0);
	buf_release(&cmd);
	close(sfd);
	free(base); free(mem); free(snap); free(missing);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_plaintext_roundtrip, each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_encrypted_roundtrip, each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_tampering_is_refused, each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_failed_save_leaves_nothing, each_setup,
						each_teardown),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
