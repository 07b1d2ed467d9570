/* execstream.c — the streamed exec's ndjson decoded into callbacks (see
 * execstream.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include <sodium.h>

#include "execstream.h"

void execstream_init(struct execstream *x, const struct execstream_cb *cb, void *arg)
{
	memset(x, 0, sizeof(*x));
	buf_init(&x->line);
	x->cb = cb;
	x->arg = arg;
}

void execstream_release(struct execstream *x)
{
	buf_release(&x->line);
}

bool execstream_data(const cJSON *o, char **ret, size_t *ret_len)
{
	const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "data"));
	const char *b = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "data_b64"));
	if (d) {
		*ret_len = strlen(d);
		*ret = xstrdup(d);
		return true;
	}
	if (!b)
		return false;
	size_t cap = strlen(b), n;
	uint8_t *raw = xmalloc(cap + 1);
	if (sodium_base642bin(raw, cap, b, strlen(b), NULL, &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(raw);
		return false;
	}
	*ret = (char *)raw;
	*ret_len = n;
	return true;
}

void execstream_message(struct execstream *x, const cJSON *o)
{
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
	if (!type || x->ended)
		return;
	if (strcmp(type, "stdout") == 0 || strcmp(type, "stderr") == 0) {
		char *data;
		size_t n;
		if (execstream_data(o, &data, &n)) {
			x->cb->output(type[3] == 'o' ? 1 : 2, data, n, x->arg);
			free(data);
		}
	} else if (strcmp(type, "exit") == 0) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "exit_code");
		x->ended = true;
		if (!cJSON_IsNumber(code))
			x->cb->error("the daemon said the command exited but not with which code",
				     x->arg);
		else
			x->cb->exit(code->valueint,
				    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "timed_out")), x->arg);
	} else if (strcmp(type, "error") == 0) {
		const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "error"));
		x->ended = true;
		x->cb->error(m ? m : "the daemon reported an error without a message", x->arg);
	}
}

void execstream_feed(struct execstream *x, const char *p, size_t n)
{
	buf_add(&x->line, p, n);
	char *nl;
	while ((nl = memchr(x->line.data, '\n', x->line.len))) {
		size_t len = (size_t)(nl - x->line.data);
		cJSON *o = cJSON_ParseWithLength(x->line.data, len);
		if (o)
			execstream_message(x, o);
		cJSON_Delete(o);
		buf_consume(&x->line, len + 1);
	}
}
