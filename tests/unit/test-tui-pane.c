/* test-tui-pane.c — tui/pane.c (a terminal in memory over libvterm
 * 0.1.4) driven by data: every case of tests/data/tui/pane.txt feeds
 * bytes and keys into a pane and checks its cells, cursor, colours,
 * scrollback and the bytes keys send (the format is at the top of that
 * file); then the scrollback ring's bounds, in code. Run from the project
 * root. Sits between cmocka and pane.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "pane.h"

#define CASES "tests/data/tui/pane.txt"

/* A quoted string with C escapes → bytes; returns the rest of the line. */
static const char *unquote(const char *s, struct buf *out, const char *where)
{
	while (*s == ' ')
		s++;
	if (*s != '"')
		fail_msg("%s: expected a quoted string at '%s'", where, s);
	for (s++; *s && *s != '"'; s++) {
		if (*s != '\\') {
			buf_addch(out, *s);
			continue;
		}
		s++;
		switch (*s) {
		case 'r': buf_addch(out, '\r'); break;
		case 'n': buf_addch(out, '\n'); break;
		case 't': buf_addch(out, '\t'); break;
		case 'e': buf_addch(out, 0x1b); break;
		case 'a': buf_addch(out, 0x07); break;
		case 'x': {
			char hex[3] = { s[1], s[2], 0 };
			buf_addch(out, (char)strtol(hex, NULL, 16));
			s += 2;
			break;
		}
		default: buf_addch(out, *s); break;
		}
	}
	if (*s != '"')
		fail_msg("%s: unterminated string", where);
	return s + 1;
}

static int32_t parse_color(const char *v)
{
	if (strcmp(v, "default") == 0)
		return PANE_COLOR_DEFAULT;
	int r, g, b;
	if (sscanf(v, "rgb:%d,%d,%d", &r, &g, &b) == 3)
		return PANE_RGB(r, g, b);
	return (int32_t)strtol(v, NULL, 10);
}

static unsigned parse_attrs(const char *v)
{
	unsigned a = 0;
	if (strstr(v, "bold"))
		a |= PANE_BOLD;
	if (strstr(v, "underline"))
		a |= PANE_UNDERLINE;
	if (strstr(v, "italic"))
		a |= PANE_ITALIC;
	if (strstr(v, "reverse"))
		a |= PANE_REVERSE;
	return a;
}

static uint32_t utf8_first(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	if (u[0] < 0x80)
		return u[0];
	if ((u[0] & 0xe0) == 0xc0)
		return ((u[0] & 0x1fu) << 6) | (u[1] & 0x3fu);
	if ((u[0] & 0xf0) == 0xe0)
		return ((u[0] & 0x0fu) << 12) | ((u[1] & 0x3fu) << 6) | (u[2] & 0x3fu);
	return ((u[0] & 0x07u) << 18) | ((u[1] & 0x3fu) << 12) | ((u[2] & 0x3fu) << 6) |
	       (u[3] & 0x3fu);
}

static unsigned parse_mods(const char *s)
{
	unsigned m = 0;
	if (strstr(s, "shift"))
		m |= PANE_MOD_SHIFT;
	if (strstr(s, "ctrl"))
		m |= PANE_MOD_CTRL;
	if (strstr(s, "alt"))
		m |= PANE_MOD_ALT;
	return m;
}

static int key_of(const char *name)
{
	static const struct {
		const char *name;
		int key;
	} keys[] = {
		{ "up", PANE_KEY_UP }, { "down", PANE_KEY_DOWN }, { "left", PANE_KEY_LEFT },
		{ "right", PANE_KEY_RIGHT }, { "home", PANE_KEY_HOME }, { "end", PANE_KEY_END },
		{ "enter", PANE_KEY_ENTER }, { "tab", PANE_KEY_TAB },
		{ "backspace", PANE_KEY_BACKSPACE }, { "escape", PANE_KEY_ESCAPE },
		{ "pgup", PANE_KEY_PAGEUP }, { "pgdn", PANE_KEY_PAGEDOWN }, { "ins", PANE_KEY_INS },
		{ "del", PANE_KEY_DEL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strcmp(keys[i].name, name) == 0)
			return keys[i].key;
	if (name[0] == 'f' && name[1] >= '1' && name[1] <= '9')
		return PANE_KEY_F1 + (int)strtol(name + 1, NULL, 10) - 1;
	fail_msg("unknown key '%s'", name);
	return 0;
}

static void test_cases(void **state UNUSED)
{
	FILE *f = fopen(CASES, "r");
	assert_non_null(f);
	char line[1024], name[256] = "";
	struct pane *p = NULL;
	struct buf keys_out = BUF_INIT;
	int lineno = 0, cases = 0, checks = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		char where[512];
		snprintf(where, sizeof(where), CASES ":%d (%s)", lineno, name);
		char cmd[32] = "";
		int used = 0;
		sscanf(line, "%31s %n", cmd, &used);
		const char *rest = line + used;
		if (strcmp(cmd, "case") == 0) {
			snprintf(name, sizeof(name), "%s", rest);
			cases++;
		} else if (strcmp(cmd, "size") == 0) {
			int r, c;
			assert_int_equal(sscanf(rest, "%d %d", &r, &c), 2);
			pane_free(p);
			p = pane_new(r, c);
			buf_reset(&keys_out);
		} else if (strcmp(cmd, "end") == 0) {
			pane_free(p);
			p = NULL;
		} else if (!p) {
			fail_msg("%s: '%s' before 'size'", where, cmd);
		} else if (strcmp(cmd, "in") == 0) {
			struct buf b = BUF_INIT;
			unquote(rest, &b, where);
			pane_feed(p, b.data, b.len);
			buf_release(&b);
		} else if (strcmp(cmd, "resize") == 0) {
			int r, c;
			assert_int_equal(sscanf(rest, "%d %d", &r, &c), 2);
			pane_resize(p, r, c);
		} else if (strcmp(cmd, "scroll") == 0) {
			int n = (int)strtol(rest, NULL, 10);
			pane_scroll(p, n == 0 ? 0 : n - pane_scroll_offset(p));
		} else if (strcmp(cmd, "clean") == 0) {
			pane_clean(p);
		} else if (strcmp(cmd, "key") == 0) {
			char kname[32];
			sscanf(rest, "%31s", kname);
			pane_key(p, (enum pane_key)key_of(kname), parse_mods(rest + strlen(kname)),
				 &keys_out);
		} else if (strcmp(cmd, "char") == 0) {
			uint32_t ch;
			if (rest[0] == '\\' && rest[1] == 'x')
				ch = (uint32_t)strtol(rest + 2, NULL, 16);
			else
				ch = utf8_first(rest);
			pane_char(p, ch, parse_mods(rest + 1), &keys_out);
		} else if (strcmp(cmd, "out") == 0) {
			struct buf want = BUF_INIT;
			unquote(rest, &want, where);
			if (want.len != keys_out.len || memcmp(want.data, keys_out.data, want.len) != 0)
				fail_msg("%s: keys sent %zu bytes, not the %zu expected", where,
					 keys_out.len, want.len);
			buf_release(&want);
			buf_reset(&keys_out);
			checks++;
		} else if (strcmp(cmd, "row") == 0) {
			int r = (int)strtol(rest, (char **)&rest, 10);
			struct buf want = BUF_INIT, got = BUF_INIT;
			unquote(rest, &want, where);
			pane_row_text(p, r, &got);
			if (strcmp(want.data, got.data) != 0)
				fail_msg("%s: row %d is '%s', not '%s'", where, r, got.data, want.data);
			buf_release(&want);
			buf_release(&got);
			checks++;
		} else if (strcmp(cmd, "cursor") == 0) {
			int r, c, gr, gc;
			bool vis;
			assert_int_equal(sscanf(rest, "%d %d", &r, &c), 2);
			pane_cursor(p, &gr, &gc, &vis);
			if (r != gr || c != gc)
				fail_msg("%s: cursor at %d,%d, not %d,%d", where, gr, gc, r, c);
			checks++;
		} else if (strcmp(cmd, "cell") == 0) {
			char *end;
			int r = (int)strtol(rest, &end, 10);
			int c = (int)strtol(end, &end, 10);
			struct pane_cell cell;
			pane_cell(p, r, c, &cell);
			char *dup = xstrdup(end), *save = NULL;
			for (char *w = strtok_r(dup, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
				char *eq = strchr(w, '=');
				assert_non_null(eq);
				*eq = '\0';
				const char *v = eq + 1;
				if (strcmp(w, "ch") == 0 && cell.ch != utf8_first(v))
					fail_msg("%s: cell %d,%d holds U+%04X, not '%s'", where, r, c,
						 cell.ch, v);
				if (strcmp(w, "fg") == 0 && cell.fg != parse_color(v))
					fail_msg("%s: cell %d,%d fg %#x, not %s", where, r, c,
						 (unsigned)cell.fg, v);
				if (strcmp(w, "bg") == 0 && cell.bg != parse_color(v))
					fail_msg("%s: cell %d,%d bg %#x, not %s", where, r, c,
						 (unsigned)cell.bg, v);
				if (strcmp(w, "attrs") == 0 && cell.attrs != parse_attrs(v))
					fail_msg("%s: cell %d,%d attrs %#x, not %s", where, r, c,
						 cell.attrs, v);
				checks++;
			}
			free(dup);
		} else if (strcmp(cmd, "sb") == 0) {
			size_t n = (size_t)strtol(rest, NULL, 10);
			if (pane_scrollback_lines(p) != n)
				fail_msg("%s: %zu scrollback lines, not %zu", where,
					 pane_scrollback_lines(p), n);
			checks++;
		} else if (strcmp(cmd, "alt") == 0) {
			if (pane_altscreen(p) != (rest[0] == '1'))
				fail_msg("%s: alternate screen is %d", where, pane_altscreen(p));
			checks++;
		} else if (strcmp(cmd, "title") == 0) {
			struct buf want = BUF_INIT;
			unquote(rest, &want, where);
			if (strcmp(pane_title(p), want.data) != 0)
				fail_msg("%s: title '%s'", where, pane_title(p));
			buf_release(&want);
			checks++;
		} else if (strcmp(cmd, "dirty") == 0) {
			int r, d;
			assert_int_equal(sscanf(rest, "%d %d", &r, &d), 2);
			if (pane_dirty(p, r) != (d == 1))
				fail_msg("%s: row %d dirty is %d", where, r, pane_dirty(p, r));
			checks++;
		} else {
			fail_msg("%s: unknown command '%s'", where, cmd);
		}
	}
	fclose(f);
	pane_free(p);
	buf_release(&keys_out);
	assert_true(cases >= 15);
	assert_true(checks >= 50);
}

/* The scrollback keeps at most PANE_SCROLLBACK_LINES lines, the newest. */
static void test_scrollback_bounded(void **state UNUSED)
{
	struct pane *p = pane_new(4, 20);
	struct buf b = BUF_INIT;
	int total = PANE_SCROLLBACK_LINES + 1000;
	for (int i = 0; i < total; i++)
		buf_addf(&b, "line %d\r\n", i);
	pane_feed(p, b.data, b.len);
	assert_int_equal(pane_scrollback_lines(p), PANE_SCROLLBACK_LINES);
	pane_scroll(p, PANE_SCROLLBACK_LINES + 50);   /* clamped to the oldest kept */
	assert_int_equal(pane_scroll_offset(p), PANE_SCROLLBACK_LINES);
	struct buf row = BUF_INIT;
	pane_row_text(p, 0, &row);
	char want[32];
	snprintf(want, sizeof(want), "line %d", total - 3 - PANE_SCROLLBACK_LINES);
	assert_string_equal(row.data, want);
	buf_release(&row);
	buf_release(&b);
	pane_free(p);
}

/* ... and at most PANE_SCROLLBACK_BYTES: wide lines are dropped sooner. */
static void test_scrollback_bytes(void **state UNUSED)
{
	struct pane *p = pane_new(2, 400);
	struct buf b = BUF_INIT;
	for (int i = 0; i < 2000; i++) {
		for (int k = 0; k < 399; k++)
			buf_addch(&b, (char)('a' + (i + k) % 26));
		buf_adds(&b, "\r\n");
	}
	pane_feed(p, b.data, b.len);
	size_t n = pane_scrollback_lines(p);
	size_t per_line = 4 + 399 * sizeof(struct pane_cell);
	assert_true(n > 0);
	assert_true(n * per_line <= PANE_SCROLLBACK_BYTES);
	assert_true((n + 2) * per_line > PANE_SCROLLBACK_BYTES);
	buf_release(&b);
	pane_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_scrollback_bounded),
		cmocka_unit_test(test_scrollback_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
