/* theme.c — themes as data (see theme.h): the role table, the built-in
 * default and mono themes, style parsing, loading a YAML theme file
 * through shared/config.c. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "num.h"
#include "theme.h"

/* The roles: their keys in a file and the built-in default (dark) and mono
 * styles. Keep themes/default.yaml and themes/mono.yaml the same as these
 * (test-tui-theme checks). */
static const struct {
	const char *key, *dflt, *mono;
} roles[R_N] = {
	[R_NORMAL] = { "normal", "default", "default" },
	[R_HEADER] = { "header", "white on blue bold", "default reverse bold" },
	[R_FOOTER] = { "footer", "white on 236", "default reverse" },
	[R_KEY] = { "key", "bright-yellow on 236 bold", "default reverse bold underline" },
	[R_TITLE] = { "title", "bright-white bold", "default bold underline" },
	[R_SELECTED] = { "selected", "black on cyan", "default reverse" },
	[R_DIM] = { "dim", "bright-black", "default dim" },
	[R_BORDER] = { "border", "blue", "default" },
	[R_FOCUS] = { "focus", "bright-cyan bold", "default bold reverse" },
	[R_DIALOG] = { "dialog", "white on red bold", "default reverse bold" },
	[R_ERROR_MSG] = { "message.error", "bright-red bold", "default bold underline" },
	[R_HOT] = { "state.hot", "bright-green bold", "default bold" },
	[R_WARM] = { "state.warm", "yellow", "default" },
	[R_COLD] = { "state.cold", "cyan", "default dim" },
	[R_STOPPED] = { "state.stopped", "bright-black", "default dim" },
	[R_ERROR] = { "state.error", "bright-red bold", "default bold underline" },
	[R_BUSY] = { "state.busy", "magenta", "default underline" },
	[R_STDERR] = { "stderr", "red", "default underline" },
};

const char *theme_role_key(enum role r)
{
	return r < R_N ? roles[r].key : "?";
}

static const char *const color_names[] = {
	"black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
};

static int parse_color(const char *w, short *ret)
{
	if (strcmp(w, "default") == 0) {
		*ret = COLOR_DEFAULT;
		return 0;
	}
	bool bright = strncmp(w, "bright-", 7) == 0;
	const char *n = bright ? w + 7 : w;
	for (size_t i = 0; i < ARRAY_SIZE(color_names); i++)
		if (strcmp(n, color_names[i]) == 0) {
			*ret = (short)(i + (bright ? 8 : 0));
			return 0;
		}
	uint32_t v;
	if (!bright && num_parse_u32(w, 0, 255, &v, "colour", NULL) == 0) {
		*ret = (short)v;
		return 0;
	}
	return -EINVAL;
}

int theme_parse_style(const char *text, struct style *ret, struct err *e)
{
	struct style st = { COLOR_DEFAULT, COLOR_DEFAULT, 0 };
	char tmp[256];
	if (strlen(text) >= sizeof(tmp))
		return err_set(e, EINVAL, "must be a style of at most %zu characters",
			       sizeof(tmp) - 1);
	snprintf(tmp, sizeof(tmp), "%s", text);
	int nwords = 0;
	bool want_bg = false, have_fg = false;
	char *save = NULL;
	for (char *w = strtok_r(tmp, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
		nwords++;
		short c;
		if (want_bg) {
			if (parse_color(w, &c) < 0)
				goto bad;
			st.bg = c;
			want_bg = false;
		} else if (strcmp(w, "on") == 0) {
			want_bg = true;
		} else if (strcmp(w, "bold") == 0) {
			st.attrs |= STYLE_BOLD;
		} else if (strcmp(w, "dim") == 0) {
			st.attrs |= STYLE_DIM;
		} else if (strcmp(w, "reverse") == 0) {
			st.attrs |= STYLE_REVERSE;
		} else if (strcmp(w, "underline") == 0) {
			st.attrs |= STYLE_UNDERLINE;
		} else if (!have_fg && parse_color(w, &c) == 0) {
			st.fg = c;
			have_fg = true;
		} else {
			goto bad;
		}
	}
	if (want_bg || nwords == 0)
		goto bad;
	*ret = st;
	return 0;
bad:
	return err_set(e, EINVAL, "must be a style: FG [on BG] [bold] [dim] [reverse] "
			"[underline], a colour being default, black, red, green, yellow, "
			"blue, magenta, cyan, white, bright-NAME or 0-255");
}

static int check_style(const char *v, struct err *e)
{
	struct style st;
	return theme_parse_style(v, &st, e);
}

void theme_builtin(const char *name, struct theme *ret)
{
	bool mono = name && strcmp(name, "mono") == 0;
	memset(ret, 0, sizeof(*ret));
	snprintf(ret->name, sizeof(ret->name), "%s", mono ? "mono" : "default");
	for (int r = 0; r < R_N; r++) {
		struct err e = ERR_INIT;
		int rc = theme_parse_style(mono ? roles[r].mono : roles[r].dflt, &ret->s[r], &e);
		(void)rc;   /* the table is checked by test-tui-theme */
	}
}

/* A theme file: one string per role, and a description. */
struct theme_file {
	char *description;
	char *v[R_N];
};

static int load_file(const char *path, const char *name, struct theme *ret, struct err *e)
{
	struct config_key keys[R_N + 1];
	keys[0] = (struct config_key)CONFIG_KEY_STR("description", struct theme_file, description);
	for (int r = 0; r < R_N; r++)
		keys[r + 1] = (struct config_key){
			.key = roles[r].key, .kind = CONFIG_STR,
			.off = offsetof(struct theme_file, v) + (size_t)r * sizeof(char *),
			.check = check_style,
		};
	struct theme_file tf = { 0 };
	int rc = config_load_file(path, keys, ARRAY_SIZE(keys), &tf, e);
	if (rc == 0) {
		struct theme t;
		theme_builtin("default", &t);
		snprintf(t.name, sizeof(t.name), "%s", name);
		for (int r = 0; r < R_N; r++)
			if (tf.v[r])
				theme_parse_style(tf.v[r], &t.s[r], e);
		*ret = t;
	}
	config_release(keys, ARRAY_SIZE(keys), &tf);
	return rc;
}

static bool valid_name(const char *n)
{
	if (!n[0] || strlen(n) > 40)
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	return true;
}

int theme_load(const char *name, const char *const *dirs, struct theme *ret, struct err *e)
{
	if (strchr(name, '/')) {
		const char *base = strrchr(name, '/') + 1;
		return load_file(name, base, ret, e);
	}
	if (!valid_name(name))
		return err_set(e, EINVAL, "invalid theme name '%s': use a-z, 0-9, '-' or '_' "
				"(or a path to a .yaml file)", name);
	for (const char *const *d = dirs; d && *d; d++) {
		struct buf p = BUF_INIT;
		buf_addf(&p, "%s/%s.yaml", *d, name);
		if (access(p.data, F_OK) == 0) {
			int rc = load_file(p.data, name, ret, e);
			buf_release(&p);
			return rc;
		}
		buf_release(&p);
	}
	if (strcmp(name, "default") == 0 || strcmp(name, "mono") == 0) {
		theme_builtin(name, ret);
		return 0;
	}
	return err_set(e, ENOENT, "no theme '%s' (looked for %s.yaml in $BHATTI_THEMES, "
			"~/.bhatti/themes, /usr/local/share/bhatti/themes, /usr/share/bhatti/themes "
			"and themes/ beside the binary)", name, name);
}

const char *theme_pick(const char *flag, const char *setting, bool no_color, bool has_colors)
{
	if (!has_colors)
		return "mono";
	if (flag && flag[0])
		return flag;
	if (no_color)
		return "mono";
	if (setting && setting[0])
		return setting;
	return "default";
}

const char *const *theme_dirs(void)
{
	static char env[PATH_MAX], home[PATH_MAX + 32], exe_dir[PATH_MAX + 32];
	static const char *dirs[6];
	size_t n = 0;
	const char *t = getenv("BHATTI_THEMES"), *h = getenv("HOME");
	if (t && t[0]) {
		snprintf(env, sizeof(env), "%s", t);
		dirs[n++] = env;
	}
	if (h && h[0]) {
		snprintf(home, sizeof(home), "%s/.bhatti/themes", h);
		dirs[n++] = home;
	}
	dirs[n++] = "/usr/local/share/bhatti/themes";
	dirs[n++] = "/usr/share/bhatti/themes";
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		exe[len] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(exe_dir, sizeof(exe_dir), "%s/../themes", exe);
			dirs[n++] = exe_dir;
		}
	}
	dirs[n] = NULL;
	return dirs;
}
