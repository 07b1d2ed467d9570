/* test-daemon-images.c — images end to end on the `tiny` tier: GET /images
 * and `bhatti images` list what images_dir holds (size, disk taken, the
 * default); `bhatti create --image` with a tier the server lacks names the
 * ones it has; `--disk-size` grows the root filesystem past the image's
 * size (a first boot: the guest's df sees it), a size below the image's
 * or above limits.max_disk_size is refused with 400 and leaves nothing.
 * Real daemon, real CLI, real VMs (TCG).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "helpers.h"
#include "json.h"

static struct daemon_proc D;
static char *KEY;
static struct buf OUT = BUF_INIT, ERR = BUF_INIT;

static int setup(void **state UNUSED)
{
	if (daemon_start(&D, "pool_size: 0\nlimits:\n  max_disk_size: 1G\n") < 0)
		return -1;
	KEY = daemon_user(&D, "img", NULL);
	return KEY ? 0 : -1;
}

static int teardown(void **state UNUSED)
{
	int rc = daemon_stop(&D, true);
	free(KEY);
	buf_release(&OUT);
	buf_release(&ERR);
	return rc;
}

/* `bhatti ARGS...` as the test's user; OUT and ERR are reset first
 * (TEST_VERBOSE=1 prints every run) */
#define cli(...) (buf_reset(&OUT), buf_reset(&ERR), \
		  bhatti(&D, KEY, NULL, &OUT, &ERR, __VA_ARGS__))

static const char *images_dir(void)
{
	const char *img = getenv("BHATTI_IMAGES");
	return img && img[0] ? img : "build/images";
}

static void test_list_images(void **state UNUSED)
{
	struct buf body = BUF_INIT;
	assert_int_equal(http_call(&D, "GET", "/images", KEY, NULL, &body), 200);
	cJSON *j = cJSON_Parse(body.data);
	assert_non_null(j);
	cJSON *tiny = NULL, *it;
	cJSON_ArrayForEach(it, j)
		if (strcmp(json_get_str(it, "name", ""), "tiny") == 0)
			tiny = it;
	assert_non_null(tiny);
	char *path = test_strf("%s/rootfs-tiny.ext4", images_dir());
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	free(path);
	assert_true(cJSON_GetObjectItem(tiny, "size")->valuedouble == (double)st.st_size);
	assert_true(cJSON_GetObjectItem(tiny, "disk_used")->valuedouble == (double)st.st_blocks * 512);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(tiny, "default")));
	assert_non_null(strstr(json_get_str(tiny, "built_at", ""), "T"));
	cJSON_Delete(j);
	/* unauthenticated: 401, like every route but /health */
	assert_int_equal(http_call(&D, "GET", "/images", NULL, NULL, &body), 401);
	buf_release(&body);

	assert_int_equal(cli("images", (const char *)NULL), 0);
	assert_non_null(strstr(OUT.data, "NAME"));
	assert_non_null(strstr(OUT.data, "\ntiny "));
	assert_non_null(strstr(OUT.data, "256M"));
	assert_non_null(strstr(OUT.data, " yes "));
	assert_int_equal(cli("images", "--json", (const char *)NULL), 0);
	assert_non_null(strstr(OUT.data, "\"disk_used\""));
}

static void test_unknown_image(void **state UNUSED)
{
	assert_int_not_equal(cli("create", "--name", "x", "--image", "nosuch", (const char *)NULL), 0);
	assert_non_null(strstr(ERR.data, "no image 'nosuch' (available: "));
	assert_non_null(strstr(ERR.data, "tiny"));
	assert_int_not_equal(cli("inspect", "x", (const char *)NULL), 0);
}

static void test_disk_size(void **state UNUSED)
{
	struct buf body = BUF_INIT;
	/* below the image's 256 MiB, above max_disk_size (1G): 400, no sandbox */
	assert_int_equal(http_call(&D, "POST", "/sandboxes", KEY,
				   "{\"name\":\"small\",\"disk_size\":\"100M\"}", &body), 400);
	assert_non_null(strstr(body.data, "smaller than image 'tiny'"));
	assert_int_equal(http_call(&D, "POST", "/sandboxes", KEY,
				   "{\"name\":\"big\",\"disk_size\":\"2G\"}", &body), 400);
	assert_non_null(strstr(body.data, "limits.max_disk_size"));
	assert_int_equal(http_call(&D, "POST", "/sandboxes", KEY,
				   "{\"name\":\"bad\",\"disk_size\":\"lots\"}", &body), 400);
	assert_int_equal(cli("list", "--json", (const char *)NULL), 0);
	assert_string_equal(OUT.data, "[]\n");
	/* grown: the guest sees a ~768 MiB root filesystem */
	assert_int_equal(cli("create", "--name", "grown", "--disk-size", "768M", (const char *)NULL), 0);
	assert_int_equal(cli("exec", "grown", "--", "df", "-m", "/", (const char *)NULL), 0);
	long total = 0;
	const char *line = strchr(OUT.data, '\n');
	assert_non_null(line);
	assert_int_equal(sscanf(line + 1, "%*s %ld", &total), 1);
	assert_true(total > 700 && total <= 768);
	assert_int_equal(http_call(&D, "GET", "/sandboxes/grown", KEY, NULL, &body), 200);
	assert_non_null(strstr(body.data, "\"disk_size\":805306368"));
	/* it stops and starts like any other */
	assert_int_equal(cli("stop", "grown", (const char *)NULL), 0);
	assert_int_equal(cli("start", "grown", (const char *)NULL), 0);
	assert_int_equal(cli("exec", "grown", "--", "df", "-m", "/", (const char *)NULL), 0);
	assert_int_equal(cli("destroy", "-y", "grown", (const char *)NULL), 0);
	buf_release(&body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_images),
		cmocka_unit_test(test_unknown_image),
		cmocka_unit_test(test_disk_size),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
