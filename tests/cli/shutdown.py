#!/usr/bin/env python3
"""Asking the guest to power off from the host: Ctrl-A s on the terminal and a first
SIGTERM press the ACPI power button (a Xen guest's request goes through xenstore, tested
in tests/qmp); the spin guest powers off on it and nestor exits 0. A second SIGTERM ends
nestor at once, whatever the guest does (the echo guest ignores the button). Prints
PASS/FAIL lines like tests/cli/run.sh.

    shutdown.py NESTOR SPIN_KERNEL ECHO_KERNEL
"""
import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import time

nestor, spin, echo = sys.argv[1:4]
results = []


def report(name, ok, why=""):
    print(f"PASS cli:{name}" if ok else f"FAIL cli:{name}: {why}")
    results.append(ok)


def read_until(fd, buf, token, timeout=20.0):
    end = time.monotonic() + timeout
    while token not in buf[0]:
        left = end - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return token in buf[0]
            if not data:
                return token in buf[0]
            buf[0] += data
    return True


def wait(proc, timeout=20):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "timeout"


# Ctrl-A s on a terminal
master, slave = os.openpty()


def make_controlling_tty():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


p = subprocess.Popen([nestor, "run", spin], stdin=slave, stdout=slave, stderr=slave,
                     preexec_fn=make_controlling_tty, close_fds=True)
out = [b""]
if read_until(master, out, b"spin: started"):
    os.write(master, b"\x01s")
    read_until(master, out, b"power button")
st = wait(p)
read_until(master, out, b"\n", 1.0)
report("ctrl-a-s", st == 0 and b"asking the guest to power off (Ctrl-A s)" in out[0]
       and b"spin: power button" in out[0], f"status {st}: {out[0][-200:]!r}")
os.close(master)
os.close(slave)

# SIGTERM, not on a terminal
r, w = os.pipe()
p = subprocess.Popen([nestor, "run", spin], stdin=subprocess.DEVNULL, stdout=w, stderr=w)
os.close(w)
out = [b""]
if read_until(r, out, b"spin: started"):
    p.send_signal(signal.SIGTERM)
st = wait(p)
read_until(r, out, b"\xff", 0.5)
report("sigterm-powerdown", st == 0 and b"spin: power button" in out[0]
       and b"a second SIGTERM ends nestor at once" in out[0], f"status {st}: {out[0][-300:]!r}")
os.close(r)

# two SIGTERMs: the second ends nestor although the guest ignores the button
r, w = os.pipe()
p = subprocess.Popen([nestor, "run", echo], stdin=subprocess.PIPE, stdout=w, stderr=w)
os.close(w)
out = [b""]
if read_until(r, out, b"READY"):
    p.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    running = p.poll() is None
    p.send_signal(signal.SIGTERM)
    st = wait(p, 5)
    report("sigterm-twice", running and st == -signal.SIGTERM,
           f"still running after the first: {running}; status after the second {st}")
else:
    p.kill()
    report("sigterm-twice", False, f"no READY: {out[0][-200:]!r}")
os.close(r)
sys.exit(0 if all(results) else 1)
