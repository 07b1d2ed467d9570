/* pane.c — a terminal in memory over libvterm 0.1.4 (see pane.h): the
 * screen's callbacks only mark rows dirty and keep the lines that scroll
 * off; drawing reads cells on the next frame. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vterm.h>

#include "pane.h"
#include "ring.h"

struct pane {
	VTerm *vt;
	VTermScreen *scr;
	int rows, cols;
	uint8_t *dirty;           /* per row of what the pane shows */
	bool any_dirty;
	/* scrollback: lines serialized into a byte ring ([u32 n][n cells]),
	 * their offsets in a circular index; absolute line numbers sb_lo ..
	 * sb_total-1 are kept */
	struct ring sb;
	uint64_t *line_off;
	uint64_t sb_lo, sb_total;
	int scroll;               /* lines scrolled back (0: the live screen) */
	VTermPos cursor;
	bool cursor_visible, alt;
	char title[128];
	struct buf *out;          /* where pane_key()/pane_char() put bytes */
};

static void mark_all(struct pane *p)
{
	memset(p->dirty, 1, (size_t)p->rows);
	p->any_dirty = true;
}

static void mark_rows(struct pane *p, int from, int to)   /* [from, to) of the screen */
{
	for (int r = from + p->scroll; r < to + p->scroll && r < p->rows; r++)
		if (r >= 0)
			p->dirty[r] = 1;
	p->any_dirty = true;
}

static int32_t color_of(const VTermColor *c, bool is_fg)
{
	if (is_fg ? VTERM_COLOR_IS_DEFAULT_FG(c) : VTERM_COLOR_IS_DEFAULT_BG(c))
		return PANE_COLOR_DEFAULT;
	if (VTERM_COLOR_IS_INDEXED(c))
		return c->indexed.idx;
	return PANE_RGB(c->rgb.red, c->rgb.green, c->rgb.blue);
}

static void cell_from_vterm(const VTermScreenCell *vc, struct pane_cell *c)
{
	memset(c, 0, sizeof(*c));
	c->ch = vc->chars[0] == (uint32_t)-1 ? 0 : vc->chars[0];
	c->width = (uint8_t)(vc->width < 0 ? 1 : vc->width);
	c->attrs = (uint8_t)((vc->attrs.bold ? PANE_BOLD : 0) |
			     (vc->attrs.underline ? PANE_UNDERLINE : 0) |
			     (vc->attrs.italic ? PANE_ITALIC : 0) |
			     (vc->attrs.reverse ? PANE_REVERSE : 0) |
			     (vc->attrs.blink ? PANE_BLINK : 0) |
			     (vc->attrs.strike ? PANE_STRIKE : 0));
	c->fg = color_of(&vc->fg, true);
	c->bg = color_of(&vc->bg, false);
}

static void blank_cell(struct pane_cell *c)
{
	memset(c, 0, sizeof(*c));
	c->width = 1;
	c->fg = c->bg = PANE_COLOR_DEFAULT;
}

/* ---- libvterm's callbacks ---------------------------------------------------- */

static int on_damage(VTermRect r, void *user)
{
	mark_rows(user, r.start_row, r.end_row);
	return 1;
}

static int on_movecursor(VTermPos pos, VTermPos old, int visible, void *user)
{
	struct pane *p = user;
	p->cursor = pos;
	p->cursor_visible = visible;
	mark_rows(p, old.row, old.row + 1);
	mark_rows(p, pos.row, pos.row + 1);
	return 1;
}

static int on_settermprop(VTermProp prop, VTermValue *val, void *user)
{
	struct pane *p = user;
	switch (prop) {
	case VTERM_PROP_CURSORVISIBLE:
		p->cursor_visible = val->boolean;
		break;
	case VTERM_PROP_ALTSCREEN:
		p->alt = val->boolean;
		mark_all(p);
		break;
	case VTERM_PROP_TITLE:
		snprintf(p->title, sizeof(p->title), "%s", val->string ? val->string : "");
		break;
	default:
		break;
	}
	return 1;
}

static void sb_trim(struct pane *p)
{
	while (p->sb_lo < p->sb_total &&
	       (p->sb_total - p->sb_lo > PANE_SCROLLBACK_LINES ||
		p->line_off[p->sb_lo % PANE_SCROLLBACK_LINES] < ring_start(&p->sb)))
		p->sb_lo++;
}

static int on_pushline(int cols, const VTermScreenCell *cells, void *user)
{
	struct pane *p = user;
	uint32_t n = (uint32_t)cols;
	while (n && (cells[n - 1].chars[0] == 0 || cells[n - 1].chars[0] == ' ') &&
	       VTERM_COLOR_IS_DEFAULT_BG(&cells[n - 1].bg) && !cells[n - 1].attrs.reverse)
		n--;   /* trailing blanks are not kept */
	p->line_off[p->sb_total % PANE_SCROLLBACK_LINES] = p->sb.head;
	ring_write(&p->sb, &n, sizeof(n));
	for (uint32_t i = 0; i < n; i++) {
		struct pane_cell c;
		cell_from_vterm(&cells[i], &c);
		ring_write(&p->sb, &c, sizeof(c));
	}
	p->sb_total++;
	sb_trim(p);
	if (p->scroll) {   /* stay on the same lines */
		p->scroll = (int)MIN((uint64_t)p->scroll + 1, p->sb_total - p->sb_lo);
		mark_all(p);
	}
	return 1;
}

/* Line k of the scrollback (absolute), as cells: its length, or -1. */
static int sb_line(const struct pane *p, uint64_t k, struct pane_cell *cells, int max)
{
	if (k < p->sb_lo || k >= p->sb_total)
		return -1;
	uint64_t off = p->line_off[k % PANE_SCROLLBACK_LINES];
	uint32_t n;
	if (ring_copy(&p->sb, off, &n, sizeof(n)) != sizeof(n))
		return -1;
	int m = (int)MIN(n, (uint32_t)max);
	if (m && ring_copy(&p->sb, off + sizeof(n), cells, (size_t)m * sizeof(*cells)) !=
			 (size_t)m * sizeof(*cells))
		return -1;
	return m;
}

static int on_popline(int cols, VTermScreenCell *cells, void *user)
{
	struct pane *p = user;
	if (p->sb_total == p->sb_lo)
		return 0;
	struct pane_cell *pc = xcalloc((size_t)cols, sizeof(*pc));
	int n = sb_line(p, p->sb_total - 1, pc, cols);
	for (int i = 0; i < cols; i++) {
		memset(&cells[i], 0, sizeof(cells[i]));
		cells[i].width = 1;
		vterm_color_indexed(&cells[i].fg, 7);
		vterm_color_indexed(&cells[i].bg, 0);
		cells[i].fg.type |= VTERM_COLOR_DEFAULT_FG;
		cells[i].bg.type |= VTERM_COLOR_DEFAULT_BG;
		if (i >= n)
			continue;
		cells[i].chars[0] = pc[i].ch;
		cells[i].width = (char)pc[i].width;
		cells[i].attrs.bold = !!(pc[i].attrs & PANE_BOLD);
		cells[i].attrs.underline = !!(pc[i].attrs & PANE_UNDERLINE);
		cells[i].attrs.italic = !!(pc[i].attrs & PANE_ITALIC);
		cells[i].attrs.reverse = !!(pc[i].attrs & PANE_REVERSE);
		if (pc[i].fg >= 0 && !PANE_IS_RGB(pc[i].fg))
			vterm_color_indexed(&cells[i].fg, (uint8_t)pc[i].fg);
		else if (pc[i].fg >= 0)
			vterm_color_rgb(&cells[i].fg, (uint8_t)(pc[i].fg >> 16), (uint8_t)(pc[i].fg >> 8),
					(uint8_t)pc[i].fg);
		if (pc[i].bg >= 0 && !PANE_IS_RGB(pc[i].bg))
			vterm_color_indexed(&cells[i].bg, (uint8_t)pc[i].bg);
		else if (pc[i].bg >= 0)
			vterm_color_rgb(&cells[i].bg, (uint8_t)(pc[i].bg >> 16), (uint8_t)(pc[i].bg >> 8),
					(uint8_t)pc[i].bg);
	}
	free(pc);
	p->sb_total--;
	if (p->scroll > (int)(p->sb_total - p->sb_lo))
		p->scroll = (int)(p->sb_total - p->sb_lo);
	return 1;
}

static const VTermScreenCallbacks screen_cb = {
	.damage = on_damage,
	.movecursor = on_movecursor,
	.settermprop = on_settermprop,
	.sb_pushline = on_pushline,
	.sb_popline = on_popline,
};

static void on_output(const char *s, size_t len, void *user)
{
	struct pane *p = user;
	if (p->out)
		buf_add(p->out, s, len);
}

/* ---- the pane ------------------------------------------------------------------ */

struct pane *pane_new(int rows, int cols)
{
	struct pane *p = xcalloc(1, sizeof(*p));
	p->rows = MAX(rows, 1), p->cols = MAX(cols, 1);
	p->dirty = xcalloc((size_t)p->rows, 1);
	ring_init(&p->sb, PANE_SCROLLBACK_BYTES);
	p->line_off = xcalloc(PANE_SCROLLBACK_LINES, sizeof(*p->line_off));
	p->vt = vterm_new(p->rows, p->cols);
	vterm_set_utf8(p->vt, 1);
	vterm_output_set_callback(p->vt, on_output, p);
	p->scr = vterm_obtain_screen(p->vt);
	vterm_screen_set_callbacks(p->scr, &screen_cb, p);
	vterm_screen_enable_altscreen(p->scr, 1);
	vterm_screen_reset(p->scr, 1);
	p->cursor_visible = true;
	mark_all(p);
	return p;
}

void pane_free(struct pane *p)
{
	if (!p)
		return;
	vterm_free(p->vt);
	ring_release(&p->sb);
	free(p->line_off);
	free(p->dirty);
	free(p);
}

void pane_feed(struct pane *p, const char *bytes, size_t n)
{
	vterm_input_write(p->vt, bytes, n);
	vterm_screen_flush_damage(p->scr);
}

void pane_resize(struct pane *p, int rows, int cols)
{
	rows = MAX(rows, 1), cols = MAX(cols, 1);
	if (rows == p->rows && cols == p->cols)
		return;
	free(p->dirty);
	p->dirty = xcalloc((size_t)rows, 1);
	p->rows = rows, p->cols = cols;
	vterm_set_size(p->vt, rows, cols);
	vterm_screen_flush_damage(p->scr);
	mark_all(p);
}

void pane_size(const struct pane *p, int *ret_rows, int *ret_cols)
{
	*ret_rows = p->rows;
	*ret_cols = p->cols;
}

/* ---- keys ------------------------------------------------------------------------- */

static VTermModifier mods_of(unsigned mods)
{
	return (VTermModifier)((mods & PANE_MOD_SHIFT ? VTERM_MOD_SHIFT : 0) |
			       (mods & PANE_MOD_ALT ? VTERM_MOD_ALT : 0) |
			       (mods & PANE_MOD_CTRL ? VTERM_MOD_CTRL : 0));
}

void pane_key(struct pane *p, enum pane_key key, unsigned mods, struct buf *out)
{
	static const VTermKey map[] = {
		[PANE_KEY_ENTER] = VTERM_KEY_ENTER, [PANE_KEY_TAB] = VTERM_KEY_TAB,
		[PANE_KEY_BACKSPACE] = VTERM_KEY_BACKSPACE, [PANE_KEY_ESCAPE] = VTERM_KEY_ESCAPE,
		[PANE_KEY_UP] = VTERM_KEY_UP, [PANE_KEY_DOWN] = VTERM_KEY_DOWN,
		[PANE_KEY_LEFT] = VTERM_KEY_LEFT, [PANE_KEY_RIGHT] = VTERM_KEY_RIGHT,
		[PANE_KEY_INS] = VTERM_KEY_INS, [PANE_KEY_DEL] = VTERM_KEY_DEL,
		[PANE_KEY_HOME] = VTERM_KEY_HOME, [PANE_KEY_END] = VTERM_KEY_END,
		[PANE_KEY_PAGEUP] = VTERM_KEY_PAGEUP, [PANE_KEY_PAGEDOWN] = VTERM_KEY_PAGEDOWN,
	};
	VTermKey k = VTERM_KEY_NONE;
	if (key >= PANE_KEY_F1 && key < PANE_KEY_F1 + 24)
		k = (VTermKey)VTERM_KEY_FUNCTION(key - PANE_KEY_F1 + 1);
	else if ((size_t)key < ARRAY_SIZE(map))
		k = map[key];
	if (k == VTERM_KEY_NONE)
		return;
	p->out = out;
	vterm_keyboard_key(p->vt, k, mods_of(mods));
	p->out = NULL;
}

void pane_char(struct pane *p, uint32_t ch, unsigned mods, struct buf *out)
{
	p->out = out;
	vterm_keyboard_unichar(p->vt, ch, mods_of(mods));
	p->out = NULL;
}

/* ---- reading ----------------------------------------------------------------------- */

void pane_row(const struct pane *p, int row, struct pane_cell *cells)
{
	for (int c = 0; c < p->cols; c++)
		blank_cell(&cells[c]);
	if (row < 0 || row >= p->rows)
		return;
	if (row < p->scroll) {
		uint64_t k = p->sb_total - (uint64_t)p->scroll + (uint64_t)row;
		struct pane_cell *line = xcalloc((size_t)p->cols, sizeof(*line));
		int n = sb_line(p, k, line, p->cols);
		for (int c = 0; c < n; c++)
			cells[c] = line[c];
		free(line);
		return;
	}
	for (int c = 0; c < p->cols; c++) {
		VTermScreenCell vc;
		if (vterm_screen_get_cell(p->scr, (VTermPos){ .row = row - p->scroll, .col = c }, &vc))
			cell_from_vterm(&vc, &cells[c]);
	}
}

void pane_cell(const struct pane *p, int row, int col, struct pane_cell *ret)
{
	blank_cell(ret);
	if (row < 0 || row >= p->rows || col < 0 || col >= p->cols)
		return;
	if (row < p->scroll) {
		struct pane_cell *cells = xcalloc((size_t)p->cols, sizeof(*cells));
		pane_row(p, row, cells);
		*ret = cells[col];
		free(cells);
		return;
	}
	VTermScreenCell vc;
	if (vterm_screen_get_cell(p->scr, (VTermPos){ .row = row - p->scroll, .col = col }, &vc))
		cell_from_vterm(&vc, ret);
}

static void add_utf8(struct buf *b, uint32_t c)
{
	char s[4];
	size_t n;
	if (c < 0x80)
		s[0] = (char)c, n = 1;
	else if (c < 0x800)
		s[0] = (char)(0xc0 | (c >> 6)), s[1] = (char)(0x80 | (c & 0x3f)), n = 2;
	else if (c < 0x10000)
		s[0] = (char)(0xe0 | (c >> 12)), s[1] = (char)(0x80 | ((c >> 6) & 0x3f)),
		s[2] = (char)(0x80 | (c & 0x3f)), n = 3;
	else
		s[0] = (char)(0xf0 | (c >> 18)), s[1] = (char)(0x80 | ((c >> 12) & 0x3f)),
		s[2] = (char)(0x80 | ((c >> 6) & 0x3f)), s[3] = (char)(0x80 | (c & 0x3f)), n = 4;
	buf_add(b, s, n);
}

void pane_row_text(const struct pane *p, int row, struct buf *out)
{
	size_t start = out->len, keep = out->len;
	struct pane_cell *cells = xcalloc((size_t)p->cols, sizeof(*cells));
	pane_row(p, row, cells);
	for (int col = 0; col < p->cols; col++) {
		const struct pane_cell *c = &cells[col];
		if (col > 0 && c->ch == 0 && cells[col - 1].width == 2)
			continue;   /* the right half of a wide character */
		add_utf8(out, c->ch ? c->ch : ' ');
		if (c->ch && c->ch != ' ')
			keep = out->len;
	}
	free(cells);
	buf_setlen(out, keep > start ? keep : start);
}

void pane_cursor(const struct pane *p, int *ret_row, int *ret_col, bool *ret_visible)
{
	*ret_row = p->cursor.row + p->scroll;
	*ret_col = p->cursor.col;
	*ret_visible = p->cursor_visible && p->scroll == 0;
}

bool pane_altscreen(const struct pane *p)
{
	return p->alt;
}

const char *pane_title(const struct pane *p)
{
	return p->title;
}

bool pane_dirty(const struct pane *p, int row)
{
	return row >= 0 && row < p->rows && p->dirty[row];
}

bool pane_any_dirty(const struct pane *p)
{
	return p->any_dirty;
}

void pane_clean(struct pane *p)
{
	memset(p->dirty, 0, (size_t)p->rows);
	p->any_dirty = false;
}

void pane_scroll(struct pane *p, int delta)
{
	long max = (long)(p->sb_total - p->sb_lo);
	long to = delta == 0 ? 0 : (long)p->scroll + delta;
	if (to < 0)
		to = 0;
	if (to > max)
		to = max;
	if (to != p->scroll) {
		p->scroll = (int)to;
		mark_all(p);
	}
}

int pane_scroll_offset(const struct pane *p)
{
	return p->scroll;
}

size_t pane_scrollback_lines(const struct pane *p)
{
	return (size_t)(p->sb_total - p->sb_lo);
}
