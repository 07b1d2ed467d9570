#!/usr/bin/env python3
# on-tty.py — runs a command on a new pseudo-terminal, its controlling
# terminal, as a user's interactive shell would (`curl … | bash` there
# reads the script from the pipe and can still ask on /dev/tty), and
# answers its prompts: each ANSWER is typed (with Enter) once its PROMPT,
# a substring, has appeared after the previous one. Between
# tests/check-install.sh and the installer; touches only the terminal it
# makes and the command's process group.
#
# Usage: on-tty.py SECONDS [PROMPT=ANSWER]... -- COMMAND [ARG]...
# Prints the terminal's transcript. Exit status: COMMAND's; 124 when it
# ran longer than SECONDS (then its process group is killed); 125 when it
# succeeded but a PROMPT never appeared.
import os
import pty
import select
import signal
import sys
import time

args = sys.argv[1:]
limit = float(args.pop(0))
answers = []
while args and args[0] != "--":
    prompt, answer = args.pop(0).split("=", 1)
    answers.append((prompt.encode(), answer.encode()))
if not args or len(args) < 2:
    sys.exit("usage: on-tty.py SECONDS [PROMPT=ANSWER]... -- COMMAND [ARG]...")
command = args[1:]

pid, fd = pty.fork()   # the child: a session of its own, the terminal's
if pid == 0:
    try:
        os.execvp(command[0], command)
    finally:
        os._exit(127)

seen = b""
pos = 0                # answers are looked for after the last prompt
status = None
deadline = time.monotonic() + limit
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        sys.stdout.buffer.write(seen + b"\n[on-tty: timed out]\n")
        sys.exit(124)
    ready, _, _ = select.select([fd], [], [], min(left, 0.5))
    data = b""
    if ready:
        try:
            data = os.read(fd, 4096)
        except OSError:   # EIO: nothing holds the terminal any more
            data = b""
            time.sleep(0.1)
        seen += data
        while answers and seen.find(answers[0][0], pos) >= 0:
            pos = seen.find(answers[0][0], pos) + len(answers[0][0])
            os.write(fd, answers.pop(0)[1] + b"\n")
    if status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
    # the command has exited and its output is read (or nothing more comes)
    if status is not None and (not ready or not data):
        break

sys.stdout.buffer.write(seen)
code = os.waitstatus_to_exitcode(status)
code = 128 - code if code < 0 else code
if code == 0 and answers:
    print("[on-tty: never asked: %s]" % ", ".join(p.decode() for p, _ in answers))
    code = 125
sys.exit(code)
