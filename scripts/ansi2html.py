#!/usr/bin/env python3
"""ansi2html.py — a terminal capture with colours (tmux capture-pane -e -p)
to an HTML page of the same cells, for scripts/tui-captures.sh (which
screenshots it with headless chromium into a PNG). Knows what tmux emits:
SGR 0, 1, 2, 4, 7, 22-27, 30-37, 39, 40-47, 49, 90-97, 100-107, 38;5;N,
48;5;N, 38;2;R;G;B, 48;2;R;G;B.

    python3 scripts/ansi2html.py CAPTURE.ansi > CAPTURE.html
"""
import html
import re
import sys

BASE = ["#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
        "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff"]
FG, BG = "#d4d4d4", "#1e1e1e"


def color256(n):
    if n < 16:
        return BASE[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + 10 * (n - 232)
    return "#%02x%02x%02x" % (v, v, v)


def sgr(params, st):
    ps = [int(p) if p else 0 for p in params.split(";")] if params else [0]
    i = 0
    while i < len(ps):
        p = ps[i]
        if p == 0:
            st.clear()
        elif p == 1:
            st["bold"] = True
        elif p == 2:
            st["dim"] = True
        elif p == 4:
            st["under"] = True
        elif p == 7:
            st["rev"] = True
        elif p == 22:
            st.pop("bold", None), st.pop("dim", None)
        elif p == 24:
            st.pop("under", None)
        elif p == 27:
            st.pop("rev", None)
        elif 30 <= p <= 37:
            st["fg"] = BASE[p - 30]
        elif 90 <= p <= 97:
            st["fg"] = BASE[p - 90 + 8]
        elif 40 <= p <= 47:
            st["bg"] = BASE[p - 40]
        elif 100 <= p <= 107:
            st["bg"] = BASE[p - 100 + 8]
        elif p == 39:
            st.pop("fg", None)
        elif p == 49:
            st.pop("bg", None)
        elif p in (38, 48) and i + 1 < len(ps):
            key = "fg" if p == 38 else "bg"
            if ps[i + 1] == 5 and i + 2 < len(ps):
                st[key] = color256(ps[i + 2])
                i += 2
            elif ps[i + 1] == 2 and i + 4 < len(ps):
                st[key] = "#%02x%02x%02x" % tuple(ps[i + 2:i + 5])
                i += 4
        i += 1


def style(st):
    fg, bg = st.get("fg", FG), st.get("bg", BG)
    if st.get("rev"):
        fg, bg = bg, fg
    css = "color:%s;background:%s" % (fg, bg)
    if st.get("bold"):
        css += ";font-weight:bold"
    if st.get("dim"):
        css += ";opacity:0.6"
    if st.get("under"):
        css += ";text-decoration:underline"
    return css


def main():
    text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    out, st = [], {}
    for line in text.rstrip("\n").split("\n"):
        row = []
        for part in re.split(r"(\x1b\[[0-9;]*m)", line):
            m = re.match(r"\x1b\[([0-9;]*)m", part)
            if m:
                sgr(m.group(1), st)
            elif part:
                row.append('<span style="%s">%s</span>' % (style(st), html.escape(part)))
        out.append("".join(row))
    print('<html><body style="margin:8px;background:%s"><pre style="font-family:DejaVu Sans Mono,'
          'monospace;font-size:15px;line-height:18px;margin:0;color:%s">%s</pre></body></html>'
          % (BG, FG, "\n".join(out)))


main()
