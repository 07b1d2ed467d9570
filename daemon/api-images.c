/* api-images.c — GET /images: the image tiers this server has
 * (`images_dir/rootfs-<tier>.ext4`, made by images/), each with its
 * size (the root filesystem a sandbox starts with), the disk it takes
 * (allocated blocks: the files are sparse) and whether it is the
 * config's default_image (docs/api.md).
 *
 * Sits between the HTTP request and the images directory; reads only.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "server.h"
#include "valid.h"

static int by_name(const void *a, const void *b)
{
	const cJSON *x = *(cJSON *const *)a, *y = *(cJSON *const *)b;
	return strcmp(cJSON_GetObjectItem(x, "name")->valuestring,
		      cJSON_GetObjectItem(y, "name")->valuestring);
}

void api_image_list(struct http_req *r)
{
	const char *dir = r->srv->cfg.images_dir;
	DIR *d = opendir(dir);
	cJSON *items[256];
	size_t n = 0;
	struct dirent *de;
	if (!d && errno != ENOENT) {
		http_reply_error(r, 500, "cannot read the images directory '%s': %s", dir,
				 strerror(errno));
		return;
	}
	while (d && (de = readdir(d)) && n < ARRAY_SIZE(items)) {
		size_t len = strlen(de->d_name);
		char name[64];
		struct stat st;
		if (len <= 12 || strncmp(de->d_name, "rootfs-", 7) != 0 ||
		    strcmp(de->d_name + len - 5, ".ext4") != 0 || len - 12 >= sizeof(name))
			continue;
		memcpy(name, de->d_name + 7, len - 12);
		name[len - 12] = '\0';
		if (valid_image(name, NULL) < 0 ||
		    fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		char when[32];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddNumberToObject(o, "size", (double)st.st_size);
		cJSON_AddNumberToObject(o, "disk_used", (double)st.st_blocks * 512);
		api_time(when, st.st_mtime);
		cJSON_AddStringToObject(o, "built_at", when);
		cJSON_AddBoolToObject(o, "default", strcmp(name, r->srv->cfg.default_image) == 0);
		items[n++] = o;
	}
	if (d)
		closedir(d);
	qsort(items, n, sizeof(items[0]), by_name);
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, items[i]);
	http_reply_json(r, 200, a);
}
