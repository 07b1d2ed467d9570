/* theme — the TUI's colours as data: one style per role (header, selected
 * row, each sandbox state, stderr in the exec log, …), read from a YAML
 * file in themes/ (themes/default.yaml shows every role), with the default
 * and mono themes built in so the TUI works with no theme files installed.
 *
 * A style is "FG [on BG] [bold] [dim] [reverse] [underline]"; a colour is
 * default, black, red, green, yellow, blue, magenta, cyan, white, their
 * bright- forms, or a number 0-255. A role missing from a file keeps the
 * built-in default's style.
 *
 * Sits between the settings (--theme, BHATTI_THEME, theme: in
 * ~/.bhatti/config.yaml) and term.c, which turns styles into curses colour
 * pairs. No ncurses here (unit-tested: tests/unit/test-tui-theme.c).
 */
#ifndef BHATTI_TUI_THEME_H
#define BHATTI_TUI_THEME_H

#include <stdbool.h>

#include "err.h"

enum role {
	R_NORMAL, R_HEADER, R_FOOTER, R_KEY, R_TITLE, R_SELECTED, R_DIM, R_BORDER,
	R_FOCUS, R_DIALOG, R_ERROR_MSG, R_HOT, R_WARM, R_COLD, R_STOPPED, R_ERROR,
	R_BUSY, R_STDERR, R_N
};

enum {
	STYLE_BOLD = 1 << 0,
	STYLE_DIM = 1 << 1,
	STYLE_REVERSE = 1 << 2,
	STYLE_UNDERLINE = 1 << 3,
};

#define COLOR_DEFAULT (-1)

struct style {
	short fg, bg;      /* -1 default, 0-255 */
	unsigned attrs;    /* STYLE_* */
};

struct theme {
	char name[64];
	struct style s[R_N];
};

/* The role's key in a theme file ("header", "state.hot", …). */
const char *theme_role_key(enum role r);

/* Parse one style ("white on blue bold"): 0 or -EINVAL with e saying what
 * a style must be. */
int theme_parse_style(const char *text, struct style *ret, struct err *e);

/* Load theme name_or_path: a path (with a '/') is read as it is; a name
 * ([a-z0-9_-]) is looked for as NAME.yaml in dirs (NULL-terminated;
 * theme_dirs() gives the usual ones); "default" and "mono" fall back to
 * the built-in ones when no file is found. -ENOENT when no such theme,
 * -EINVAL for a bad file (e: "file:line: …"). */
int theme_load(const char *name_or_path, const char *const *dirs, struct theme *ret,
	       struct err *e);
void theme_builtin(const char *name, struct theme *ret);   /* "mono", else default */

/* Which theme to use: flag > setting (BHATTI_THEME or the config) >
 * "default"; but "mono" when the terminal has no colours, and when
 * NO_COLOR is set (no_color) unless --theme asked for one. */
const char *theme_pick(const char *flag, const char *setting, bool no_color, bool has_colors);

/* The usual directories: $BHATTI_THEMES, ~/.bhatti/themes,
 * /usr/local/share/bhatti/themes, /usr/share/bhatti/themes, and themes/
 * beside the binary's directory (a build tree: build/bhatti → themes/).
 * Static storage, NULL-terminated. */
const char *const *theme_dirs(void);

#endif
