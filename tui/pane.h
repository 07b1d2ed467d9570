/* pane — one terminal emulated in memory: a libvterm VTerm (0.1.4, as
 * Debian 12 ships it: no re-wrap of the scrollback on resize), the rows
 * its damage callbacks marked dirty, and the lines that scrolled off the
 * top kept in a bounded ring (shared/ring.h) so the pane can scroll back.
 *
 * Sits between the bytes of a shell session (fed in by panes.c, which owns
 * the WebSocket through client/shell.h) and the code that draws it
 * (panes.c, with ncurses). No ncurses and no sockets here: a test feeds
 * bytes and reads cells (tests/unit/test-tui-pane.c, cases in
 * tests/data/tui-pane.txt). Keys typed into the pane are encoded by
 * libvterm (so application cursor mode and the like are right) and come
 * out as bytes for the session.
 *
 * Ownership: pane_new / pane_free.
 */
#ifndef BHATTI_TUI_PANE_H
#define BHATTI_TUI_PANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PANE_SCROLLBACK_BYTES (1u << 20)   /* per pane: at most this much ... */
#define PANE_SCROLLBACK_LINES 5000         /* ... and this many lines */

/* A colour: PANE_COLOR_DEFAULT, 0-255 (indexed), or PANE_RGB(r, g, b). */
#define PANE_COLOR_DEFAULT (-1)
#define PANE_RGB(r, g, b) (0x1000000 | ((r) << 16) | ((g) << 8) | (b))
#define PANE_IS_RGB(c) ((c) >= 0x1000000)

enum {
	PANE_BOLD = 1 << 0,
	PANE_UNDERLINE = 1 << 1,
	PANE_ITALIC = 1 << 2,
	PANE_REVERSE = 1 << 3,
	PANE_BLINK = 1 << 4,
	PANE_STRIKE = 1 << 5,
};

struct pane_cell {
	uint32_t ch;       /* the first code point; 0 for an empty cell */
	uint8_t width;     /* 1, 2 (wide), 0 (the right half of a wide char) */
	uint8_t attrs;     /* PANE_* */
	uint16_t pad;
	int32_t fg, bg;
};

struct pane;

struct pane *pane_new(int rows, int cols);
void pane_free(struct pane *p);

/* Terminal output from the session. */
void pane_feed(struct pane *p, const char *bytes, size_t n);
void pane_resize(struct pane *p, int rows, int cols);
void pane_size(const struct pane *p, int *ret_rows, int *ret_cols);

/* A key typed into the pane: a code point (mods: PANE_MOD_*) or one of
 * PANE_KEY_*. The bytes for the session are appended to out. */
enum {
	PANE_MOD_SHIFT = 1, PANE_MOD_ALT = 2, PANE_MOD_CTRL = 4,
};
enum pane_key {
	PANE_KEY_ENTER = 1, PANE_KEY_TAB, PANE_KEY_BACKSPACE, PANE_KEY_ESCAPE, PANE_KEY_UP,
	PANE_KEY_DOWN, PANE_KEY_LEFT, PANE_KEY_RIGHT, PANE_KEY_INS, PANE_KEY_DEL, PANE_KEY_HOME,
	PANE_KEY_END, PANE_KEY_PAGEUP, PANE_KEY_PAGEDOWN,
	PANE_KEY_F1 = 0x100,   /* PANE_KEY_F1 + n - 1 for Fn */
};
void pane_key(struct pane *p, enum pane_key key, unsigned mods, struct buf *out);
void pane_char(struct pane *p, uint32_t ch, unsigned mods, struct buf *out);

/* The cell at (row, col) of what the pane shows: with a scroll-back
 * offset of k lines, rows 0..k-1 are the last k lines of the scrollback. */
void pane_cell(const struct pane *p, int row, int col, struct pane_cell *ret);
/* The pane's cols cells of row, as pane_cell() gives them. */
void pane_row(const struct pane *p, int row, struct pane_cell *cells);
/* Row's text (UTF-8, trailing blanks dropped) for tests and captures. */
void pane_row_text(const struct pane *p, int row, struct buf *out);
void pane_cursor(const struct pane *p, int *ret_row, int *ret_col, bool *ret_visible);
bool pane_altscreen(const struct pane *p);
const char *pane_title(const struct pane *p);

/* Dirty rows (of what the pane shows) since pane_clean(). */
bool pane_dirty(const struct pane *p, int row);
bool pane_any_dirty(const struct pane *p);
void pane_clean(struct pane *p);

/* Scroll back: by delta lines (positive: up into the scrollback), clamped;
 * 0 to reset. pane_feed() keeps the offset on the same lines. */
void pane_scroll(struct pane *p, int delta);
int pane_scroll_offset(const struct pane *p);
size_t pane_scrollback_lines(const struct pane *p);

#endif
