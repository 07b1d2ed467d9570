/* term.c — the terminal under the TUI: ncurses set up (raw keys, no echo,
 * the alternate screen) and always restored — by term_stop(), at exit(),
 * and on a crash signal (the saved termios put back and the alternate
 * screen left from the signal handler, which then re-raises); the
 * theme's styles turned into colour pairs; a pane cell's colours into
 * pairs made on first use.
 *
 * Sits between app.c and ncurses. Touches the terminal (fd 0 and 1) and
 * the process's crash-signal handlers, nothing else.
 */
#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "app.h"
#include "pane.h"

static struct termios saved_tio;
static bool started, have_tio;
static int tio_fd = 0, out_fd_ = 1;
static int role_attr[R_N];

/* pane colours: pairs made as cells need them, from PAIR_FIRST on */
#define PAIR_FIRST (R_N + 1)
static short pair_fg[1024], pair_bg[1024];
static int npairs;

static void crash(int sig)
{
	/* async-signal-safe: put the terminal back, then die as we would have */
	static const char reset[] = "\033[0m\033[?25h\033[?1049l\r\n";
	if (have_tio)
		tcsetattr(tio_fd, TCSANOW, &saved_tio);
	ssize_t n = write(out_fd_, reset, sizeof(reset) - 1);
	(void)n;
	signal(sig, SIG_DFL);
	raise(sig);
}

static void at_exit(void)
{
	term_stop();
}

int term_start(int in_fd, int out_fd, struct err *e)
{
	if (!isatty(in_fd) || !isatty(out_fd))
		return err_set(e, ENOTTY, "the TUI needs a terminal (stdin and stdout)");
	const char *t = getenv("TERM");
	if (!t || !t[0] || strcmp(t, "dumb") == 0)
		return err_set(e, ENOTTY, "the TUI needs a terminal that can move the cursor "
				"(TERM is '%s')", t ? t : "");
	setlocale(LC_ALL, "");
	tio_fd = in_fd, out_fd_ = out_fd;
	have_tio = tcgetattr(in_fd, &saved_tio) == 0;
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		signal(sigs[i], crash);
	if (!getenv("ESCDELAY"))
		set_escdelay(25);
	FILE *out = out_fd == 1 ? stdout : fdopen(dup(out_fd), "w");
	FILE *in = in_fd == 0 ? stdin : fdopen(dup(in_fd), "r");
	if (!out || !in || !newterm(NULL, out, in))
		return err_set(e, ENOTTY, "cannot start the terminal '%s'", t);
	started = true;
	atexit(at_exit);
	raw();
	noecho();
	nonl();
	curs_set(0);
	if (has_colors()) {
		start_color();
		use_default_colors();
	}
	return 0;
}

void term_stop(void)
{
	if (!started)
		return;
	started = false;
	curs_set(1);
	endwin();
	if (have_tio)
		tcsetattr(tio_fd, TCSANOW, &saved_tio);
}

bool term_has_colors(void)
{
	return has_colors() && COLORS >= 8;
}

/* A theme colour on this terminal: 8-15 become 0-7 (+bold) on an
 * 8-colour one, higher ones the default. */
static short fit(short c, int *bold)
{
	if (c < 0 || c < COLORS)
		return c;
	if (c < 16) {
		*bold = A_BOLD;
		return (short)(c - 8);
	}
	return -1;
}

void term_colors(const struct theme *t)
{
	for (int r = 0; r < R_N; r++) {
		const struct style *s = &t->s[r];
		int a = 0;
		if (s->attrs & STYLE_BOLD)
			a |= A_BOLD;
		if (s->attrs & STYLE_DIM)
			a |= A_DIM;
		if (s->attrs & STYLE_REVERSE)
			a |= A_REVERSE;
		if (s->attrs & STYLE_UNDERLINE)
			a |= A_UNDERLINE;
		if (term_has_colors() && (s->fg >= 0 || s->bg >= 0)) {
			int bold = 0;
			short fg = fit(s->fg, &bold), bg = fit(s->bg, &(int){ 0 });
			init_pair((short)(r + 1), fg, bg);
			a |= COLOR_PAIR(r + 1) | bold;
		}
		role_attr[r] = a;
	}
	npairs = 0;
}

int term_attr(enum role r)
{
	return r < R_N ? role_attr[r] : 0;
}

/* The nearest of the 256-colour palette for an RGB cell colour. */
static short from_rgb(int c)
{
	int r = (c >> 16) & 255, g = (c >> 8) & 255, b = c & 255;
	if (COLORS < 256)
		return (short)(((r > 127) ? 1 : 0) | ((g > 127) ? 2 : 0) | ((b > 127) ? 4 : 0));
	return (short)(16 + 36 * ((r * 5 + 127) / 255) + 6 * ((g * 5 + 127) / 255) +
		       ((b * 5 + 127) / 255));
}

int term_pane_attr(int fg, int bg, unsigned pa)
{
	int a = 0;
	if (pa & PANE_BOLD)
		a |= A_BOLD;
	if (pa & PANE_UNDERLINE)
		a |= A_UNDERLINE;
	if (pa & PANE_REVERSE)
		a |= A_REVERSE;
	if (!term_has_colors() || (fg < 0 && bg < 0))
		return a;
	int bold = 0;
	short f = fg >= 0x1000000 ? from_rgb(fg) : fit((short)fg, &bold);
	short b = bg >= 0x1000000 ? from_rgb(bg) : fit((short)bg, &(int){ 0 });
	for (int i = 0; i < npairs; i++)
		if (pair_fg[i] == f && pair_bg[i] == b)
			return a | bold | COLOR_PAIR(PAIR_FIRST + i);
	if (npairs >= (int)ARRAY_SIZE(pair_fg) || PAIR_FIRST + npairs >= COLOR_PAIRS)
		return a | bold;   /* out of pairs: the attributes only */
	init_pair((short)(PAIR_FIRST + npairs), f, b);
	pair_fg[npairs] = f, pair_bg[npairs] = b;
	return a | bold | COLOR_PAIR(PAIR_FIRST + npairs++);
}
