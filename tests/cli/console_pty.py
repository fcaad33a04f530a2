#!/usr/bin/env python3
"""nestor's console on a terminal: runs the echo guest on a pseudo-terminal that is its
controlling terminal, so that without raw mode Ctrl-C would be a SIGINT and input would
wait for a newline. Prints PASS/FAIL lines like tests/cli/run.sh.

    console_pty.py NESTOR ECHO_KERNEL
"""
import fcntl
import os
import select
import subprocess
import sys
import termios
import time

nestor, kernel = sys.argv[1], sys.argv[2]
results = []


def report(name, ok, why=""):
    print(f"PASS cli:{name}" if ok else f"FAIL cli:{name}: {why}")
    results.append(ok)


master, slave = os.openpty()
before = termios.tcgetattr(slave)


def make_controlling_tty():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


proc = subprocess.Popen([nestor, "run", kernel], stdin=slave, stdout=slave, stderr=slave,
                        preexec_fn=make_controlling_tty, close_fds=True)
output = b""


def read_until(token, timeout=10.0):
    """Reads the terminal until token appears; returns whether it did."""
    global output
    end = time.monotonic() + timeout
    while token not in output:
        left = end - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([master], [], [], left)
        if ready:
            try:
                output += os.read(master, 4096)
            except OSError:
                return token in output
    return True


def tail():
    return output[-120:].decode("latin-1").encode("unicode_escape").decode()


ready = read_until(b"READY")
report("console-tty-boot", ready, f"no READY from the guest: {tail()}")
if ready:
    os.write(master, b"ab\x03cd")
    report("console-tty-ctrl-c", read_until(b"ab^03cd"),
           f"typed 'ab', Ctrl-C, 'cd' without a newline; the guest did not echo ab^03cd: {tail()}")
    os.write(master, b"\x01a\x01\x01")
    report("console-tty-ctrl-a-a", read_until(b"^01^01"),
           f"Ctrl-A a and Ctrl-A Ctrl-A should each send one Ctrl-A: {tail()}")
    os.write(master, b"\x01x")
try:
    status = proc.wait(timeout=10)
except subprocess.TimeoutExpired:
    proc.kill()
    status = proc.wait()
    report("console-tty-ctrl-a-x", False, f"nestor still running 10 s after Ctrl-A x: {tail()}")
else:
    read_until(b"Ctrl-A x", 1.0)
    report("console-tty-ctrl-a-x", status == 0 and b"terminated by Ctrl-A x" in output,
           f"status {status}, want 0 with the 'terminated by Ctrl-A x' message: {tail()}")
after = termios.tcgetattr(slave)
report("console-tty-restored", after == before,
       "terminal attributes differ after nestor exited (raw mode left on)")
sys.exit(0 if all(results) else 1)
