/* cmd-images.c — `bhatti images`: the image tiers the server has
 * (GET /images), with their sizes; `--image TIER` of `bhatti create`
 * picks one. */
#include <stdio.h>

#include "cli.h"

/* "4.0G", "812M" from bytes. */
static void human(double bytes, char *out, size_t n)
{
	const char *unit = "KMGT";
	double v = bytes / 1024;
	int u = 0;
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(out, n, v < 10 ? "%.1f%c" : "%.0f%c", v, unit[u]);
}

static int run(struct cli *c)
{
	cJSON *j;
	int rc = cli_call_json(c, "GET", "/images", &j);
	if (rc)
		return rc;
	if (c->json)
		cli_print_json(j);
	else if (cJSON_GetArraySize(j) == 0)
		puts("no images on the server (make images, or install.sh --tier NAME)");
	else {
		printf("%-16s %8s %8s %-8s %s\n", "NAME", "SIZE", "DISK", "DEFAULT", "BUILT");
		cJSON *i;
		cJSON_ArrayForEach(i, j)
		{
			char size[16], used[16];
			cJSON *s = cJSON_GetObjectItem(i, "size"), *u = cJSON_GetObjectItem(i, "disk_used");
			human(cJSON_IsNumber(s) ? s->valuedouble : 0, size, sizeof(size));
			human(cJSON_IsNumber(u) ? u->valuedouble : 0, used, sizeof(used));
			printf("%-16s %8s %8s %-8s %s\n", cli_jstr(i, "name"), size, used,
			       cJSON_IsTrue(cJSON_GetObjectItem(i, "default")) ? "yes" : "",
			       cli_jstr(i, "built_at"));
		}
	}
	cJSON_Delete(j);
	return 0;
}

const struct cli_cmd cmd_images_entry = {
	.name = "images",
	.summary = "list the image tiers the server has, with their sizes",
	.usage = "[--json]",
	.help = "SIZE is the root filesystem a sandbox starts with; DISK what the image\n"
		"takes on the server's disk. `bhatti create --image NAME` uses one.",
	.run = run,
};
