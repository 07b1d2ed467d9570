/* proxy-http.c — HTTP/1.1 heads and body framing for the publish proxy
 * (see proxy-http.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "num.h"
#include "proxy-http.h"
#include "util.h"

ssize_t phead_end(const char *p, size_t n, size_t max)
{
	size_t lim = n < max ? n : max;
	for (size_t i = 0; i < lim; i++) {
		if (p[i] != '\n')
			continue;
		/* a blank line: "\n\n" or "\n\r\n" */
		if (i + 1 < n && p[i + 1] == '\n')
			return i + 2 <= max ? (ssize_t)(i + 2) : -1;
		if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
			return i + 3 <= max ? (ssize_t)(i + 3) : -1;
	}
	return n >= max ? -1 : 0;
}

static bool tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Next line of the head: NUL-terminated in place, CR dropped; NULL at the end. */
static char *next_line(char **pos, char *end)
{
	char *s = *pos;
	if (s >= end)
		return NULL;
	char *nl = memchr(s, '\n', (size_t)(end - s));
	if (!nl)
		nl = end;
	*pos = nl + 1;
	if (nl > s && nl[-1] == '\r')
		nl[-1] = '\0';
	*nl = '\0';
	return s;
}

static int bad(struct err *e, const char *what)
{
	return err_set(e, EINVAL, "malformed HTTP head: %s", what);
}

static int parse_version(const char *v, int *minor)
{
	if (strncmp(v, "HTTP/1.", 7) != 0 || (v[7] != '0' && v[7] != '1') || v[8])
		return -1;
	*minor = v[7] - '0';
	return 0;
}

static int parse_headers(struct phead *h, char **pos, char *end, struct err *e)
{
	char *line;
	while ((line = next_line(pos, end)) && line[0]) {
		if (line[0] == ' ' || line[0] == '\t')
			return bad(e, "folded header line");
		char *colon = strchr(line, ':');
		if (!colon || colon == line)
			return bad(e, "header line without a name");
		for (char *c = line; c < colon; c++)
			if (!tchar(*c))
				return bad(e, "bad character in a header name");
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t vl = strlen(v);
		while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			v[--vl] = '\0';
		for (size_t i = 0; i < vl; i++)
			if (v[i] == '\r' || ((unsigned char)v[i] < 0x20 && v[i] != '\t'))
				return bad(e, "control character in a header value");
		if (h->nh == PHEAD_MAX_HEADERS)
			return bad(e, "too many header lines");
		h->h[h->nh++] = (struct phdr){ line, v };
	}
	return 0;
}

/* A copy of the head with NUL or a bare CR refused. */
static int copy_head(const char *p, size_t n, struct phead *h, struct err *e)
{
	memset(h, 0, sizeof(*h));
	if (memchr(p, '\0', n))
		return bad(e, "NUL byte");
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
			return bad(e, "bare CR");
	h->buf = xmalloc(n + 1);
	memcpy(h->buf, p, n);
	h->buf[n] = '\0';
	return 0;
}

int phead_parse_request(const char *p, size_t n, struct phead *h, struct err *e)
{
	int r = copy_head(p, n, h, e);
	if (r < 0)
		return r;
	char *pos = h->buf, *end = h->buf + n;
	char *line = next_line(&pos, end);
	char *sp1 = line ? strchr(line, ' ') : NULL;
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strchr(sp2 + 1, ' '))
		return bad(e, "request line");
	*sp1 = *sp2 = '\0';
	for (char *c = line; *c; c++)
		if (!tchar(*c))
			return bad(e, "method");
	if (!line[0] || !sp1[1])
		return bad(e, "request line");
	for (char *c = sp1 + 1; *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			return bad(e, "request target");
	if (parse_version(sp2 + 1, &h->minor) < 0)
		return bad(e, "HTTP version");
	h->method = line;
	h->target = sp1 + 1;
	return parse_headers(h, &pos, end, e);
}

int phead_parse_response(const char *p, size_t n, struct phead *h, struct err *e)
{
	int r = copy_head(p, n, h, e);
	if (r < 0)
		return r;
	char *pos = h->buf, *end = h->buf + n;
	char *line = next_line(&pos, end);
	char *sp1 = line ? strchr(line, ' ') : NULL;
	if (!sp1)
		return bad(e, "status line");
	*sp1 = '\0';
	if (parse_version(line, &h->minor) < 0)
		return bad(e, "HTTP version");
	char *code = sp1 + 1;
	if (strlen(code) < 3 || code[0] < '1' || code[0] > '5' || code[1] < '0' || code[1] > '9' ||
	    code[2] < '0' || code[2] > '9' || (code[3] && code[3] != ' '))
		return bad(e, "status code");
	h->status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
	h->reason = code[3] ? code + 4 : "";
	return parse_headers(h, &pos, end, e);
}

void phead_release(struct phead *h)
{
	free(h->buf);
	memset(h, 0, sizeof(*h));
}

const char *phead_get(const struct phead *h, const char *name)
{
	for (size_t i = 0; i < h->nh; i++)
		if (strcasecmp(h->h[i].name, name) == 0)
			return h->h[i].value;
	return NULL;
}

static bool list_has(const char *list, const char *token)
{
	size_t tl = strlen(token);
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *s = p;
		while (*p && *p != ',')
			p++;
		const char *q = p;
		while (q > s && (q[-1] == ' ' || q[-1] == '\t'))
			q--;
		if ((size_t)(q - s) == tl && strncasecmp(s, token, tl) == 0)
			return true;
	}
	return false;
}

bool phead_has_token(const struct phead *h, const char *name, const char *token)
{
	for (size_t i = 0; i < h->nh; i++)
		if (strcasecmp(h->h[i].name, name) == 0 && list_has(h->h[i].value, token))
			return true;
	return false;
}

bool phead_hop_by_hop(const struct phead *h, const char *name)
{
	static const char *const fixed[] = {
		"connection", "keep-alive", "proxy-connection", "te", "trailer",
		"transfer-encoding", "upgrade", "proxy-authenticate", "proxy-authorization",
	};
	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		if (strcasecmp(name, fixed[i]) == 0)
			return true;
	return phead_has_token(h, "connection", name);
}

/* ---- bodies ---------------------------------------------------------------------- */

static int framing(const struct phead *h, struct pbody *b, struct err *e)
{
	const char *te = NULL, *cl = NULL;
	for (size_t i = 0; i < h->nh; i++) {
		if (strcasecmp(h->h[i].name, "transfer-encoding") == 0) {
			if (te)
				return err_set(e, EINVAL, "two Transfer-Encoding headers");
			te = h->h[i].value;
		} else if (strcasecmp(h->h[i].name, "content-length") == 0) {
			if (cl && strcmp(cl, h->h[i].value) != 0)
				return err_set(e, EINVAL, "two different Content-Length headers");
			cl = h->h[i].value;
		}
	}
	memset(b, 0, sizeof(*b));
	if (te) {
		if (cl)
			return err_set(e, EINVAL, "both Content-Length and Transfer-Encoding");
		if (strcasecmp(te, "chunked") != 0)
			return err_set(e, ENOSYS, "transfer coding '%s' is not supported", te);
		b->kind = PBODY_CHUNKED;
		return 0;
	}
	if (cl) {
		uint64_t v;
		for (const char *c = cl; *c; c++)
			if (*c < '0' || *c > '9')
				return err_set(e, EINVAL, "Content-Length is not a number");
		if (num_parse_u64(cl, 0, UINT64_MAX / 2, &v, "Content-Length", e) < 0)
			return -EINVAL;
		b->kind = v ? PBODY_LENGTH : PBODY_NONE;
		b->left = v;
		return 0;
	}
	b->kind = PBODY_CLOSE;
	return 0;
}

int pbody_request(const struct phead *h, struct pbody *ret, struct err *e)
{
	int r = framing(h, ret, e);
	if (r == 0 && ret->kind == PBODY_CLOSE)
		ret->kind = PBODY_NONE;   /* a request without either has no body */
	return r;
}

int pbody_response(const struct phead *h, const char *method, struct pbody *ret,
		   struct err *e)
{
	if (strcmp(method, "HEAD") == 0 || h->status < 200 || h->status == 204 ||
	    h->status == 304) {
		memset(ret, 0, sizeof(*ret));
		return 0;
	}
	return framing(h, ret, e);
}

enum { C_SIZE, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER, C_TRAILER_LF,
       C_DONE };

static int hex(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#define CHUNK_LINE_MAX 4096

/* One byte of a chunk-size extension or a trailer line (not CR or LF):
 * -EINVAL for a control byte or a line over CHUNK_LINE_MAX. */
static int line_byte(struct pbody *b, uint8_t c)
{
	if ((c < 0x20 && c != '\t') || ++b->line > CHUNK_LINE_MAX)
		return -EINVAL;
	return 0;
}

ssize_t pbody_take(struct pbody *b, const uint8_t *p, size_t n, bool *ret_done)
{
	size_t i = 0;
	switch (b->kind) {
	case PBODY_NONE:
		*ret_done = true;
		return 0;
	case PBODY_CLOSE:
		*ret_done = false;
		return (ssize_t)n;
	case PBODY_LENGTH:
		i = n < b->left ? n : (size_t)b->left;
		b->left -= i;
		*ret_done = b->left == 0;
		return (ssize_t)i;
	case PBODY_CHUNKED:
		break;
	}
	while (i < n && b->state != C_DONE) {
		uint8_t c = p[i];
		switch (b->state) {
		case C_SIZE: {
			int v = hex(c);
			if (v >= 0) {
				if (b->left >> 59)
					return -EINVAL;   /* absurd size */
				b->left = b->left << 4 | (unsigned)v;
				b->any_digit = true;
				i++;
				break;
			}
			if (!b->any_digit)
				return -EINVAL;
			b->state = C_EXT;
			b->line = 0;
			break;
		}
		case C_EXT:   /* extensions (or spaces) up to the line's end */
			if (c == '\r') {
				b->state = C_SIZE_LF;
			} else if (c == '\n') {
				b->state = b->left ? C_DATA : C_TRAILER;
				b->line = 0;
			} else if (line_byte(b, c) < 0) {
				return -EINVAL;
			}
			i++;
			break;
		case C_SIZE_LF:
			if (c != '\n')
				return -EINVAL;
			b->state = b->left ? C_DATA : C_TRAILER;
			b->line = 0;
			i++;
			break;
		case C_DATA: {
			size_t k = n - i < b->left ? n - i : (size_t)b->left;
			i += k;
			b->left -= k;
			if (!b->left)
				b->state = C_DATA_CR;
			break;
		}
		case C_DATA_CR:
			if (c == '\r') {
				b->state = C_DATA_LF;
			} else if (c == '\n') {
				b->state = C_SIZE;
				b->any_digit = false;
			} else {
				return -EINVAL;
			}
			i++;
			break;
		case C_DATA_LF:
			if (c != '\n')
				return -EINVAL;
			b->state = C_SIZE;
			b->any_digit = false;
			i++;
			break;
		case C_TRAILER:   /* a trailer field line, or the empty line that ends it all */
			if (c == '\r') {
				b->state = C_TRAILER_LF;
			} else if (c == '\n') {
				if (b->line == 0)
					b->state = C_DONE;
				b->line = 0;
			} else if (line_byte(b, c) < 0) {
				return -EINVAL;
			}
			i++;
			break;
		case C_TRAILER_LF:
			if (c != '\n')
				return -EINVAL;
			b->state = b->line == 0 ? C_DONE : C_TRAILER;
			b->line = 0;
			i++;
			break;
		}
	}
	*ret_done = b->state == C_DONE;
	return (ssize_t)i;
}

bool pbody_done(const struct pbody *b)
{
	switch (b->kind) {
	case PBODY_NONE: return true;
	case PBODY_LENGTH: return b->left == 0;
	case PBODY_CHUNKED: return b->state == C_DONE;
	case PBODY_CLOSE: return false;
	}
	return false;
}
