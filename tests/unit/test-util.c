/* test-util.c — unit tests for the directory helpers of shared/util.c
 * (mkdir_parents, mkdir_p) in a private temp dir: nested directories made
 * with their modes, existing ones accepted, a file in the way reported
 * with the prefix that failed. Sits between cmocka and util.h. */
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

#include "buf.h"
#include "helpers.h"
#include "util.h"

static char *join(const char *dir, const char *rest)
{
	struct buf b = BUF_INIT;
	buf_addf(&b, "%s/%s", dir, rest);
	return buf_detach(&b, NULL);
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	return st.st_mode & 07777;
}

static void test_mkdir_p(void **state)
{
	(void)state;
	char *dir = test_tmpdir("util");
	char *deep = join(dir, "a/b/c"), *mid = join(dir, "a/b");
	mode_t old = umask(0);
	assert_int_equal(mkdir_p(deep, 0700), 0);
	assert_int_equal(mode_of(deep), 0700);
	assert_int_equal(mode_of(mid), 0755);       /* parents: 0755 */
	assert_int_equal(mkdir_p(deep, 0700), 0);   /* there already: fine */
	assert_int_equal(mkdir_p(mid, 0700), 0);
	umask(old);
	test_rmtree(dir);
	free(deep);
	free(mid);
	free(dir);
}

static void test_mkdir_parents(void **state)
{
	(void)state;
	char *dir = test_tmpdir("util");
	char *leaf = join(dir, "x/new/leaf"), *made = join(dir, "x/new");
	char *file = join(dir, "x/f"), *under = join(dir, "x/f/g/leaf");
	size_t at = 0;
	assert_int_equal(mkdir_parents(leaf, (uid_t)-1, (gid_t)-1, &at), 0);
	assert_int_equal(mode_of(made) & 0700, 0700);
	assert_int_equal(access(leaf, F_OK), -1); /* the last component is not made */
	/* a file where a directory should be: named, by its length */
	int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mkdir_parents(under, (uid_t)-1, (gid_t)-1, &at), -ENOTDIR);
	assert_int_equal(at, strlen(file));
	assert_int_equal(mkdir_p(under, 0700), -ENOTDIR);
	test_rmtree(dir);
	free(leaf);
	free(made);
	free(file);
	free(under);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mkdir_p),
		cmocka_unit_test(test_mkdir_parents),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
