#!/usr/bin/env python3
"""QMP and migration tests: nestor driven over QEMU's machine protocol as a QMP client
would drive QEMU. The guest is spin.elf, which counts and prints "spin N" lines and powers
off through ACPI when the power button is pressed. Prints PASS/FAIL lines for
tests/run.sh."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("BUILD", "build")
NESTOR = os.environ.get("NESTOR", os.path.join(BUILD, "nestor"))
SPIN = os.path.join(BUILD, "guest", "spin.elf")
results = []


def check(ok, name, why=""):
    line = ("PASS" if ok else "FAIL") + " qmp:" + name + ("" if ok else ": " + str(why)[:300])
    results.append(line)
    print(line, flush=True)
    return ok


class Qmp:
    def __init__(self, path, negotiate=True, timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.s.settimeout(timeout)
        self.buf = b""
        self.events = []
        self.greeting = self.recv()
        if negotiate:
            self.cmd("qmp_capabilities")

    def recv(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send_raw(self, data):
        self.s.sendall(data)

    def reply(self):
        while True:
            m = self.recv()
            if "event" in m:
                self.events.append(m)
            else:
                return m

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.send_raw(json.dumps(msg).encode() + b"\r\n")
        return self.reply()

    def event(self, name, timeout=30):
        deadline = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name:
                    return self.events.pop(i)
            self.s.settimeout(max(0.1, deadline - time.time()))
            try:
                m = self.recv()
            except socket.timeout:
                return None
            if "event" in m:
                self.events.append(m)
            if time.time() > deadline:
                return None

    def close(self):
        self.s.close()


class Nestor:
    def __init__(self, tmp, tag, args, qmp=True):
        self.sock = os.path.join(tmp, tag + ".qmp")
        self.out = os.path.join(tmp, tag + ".out")
        self.err = os.path.join(tmp, tag + ".err")
        cmd = [NESTOR, "run"] + (["-qmp", "unix:%s,server=on,wait=off" % self.sock] if qmp else []) + args
        self.p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.out, "wb"),
                                  stderr=open(self.err, "wb"))

    def output(self):
        return open(self.out, "rb").read().decode(errors="replace")

    def stderr(self):
        return open(self.err, "rb").read().decode(errors="replace")

    def spins(self):
        return [int(x) for x in re.findall(r"^spin (\d+)", self.output(), re.M)]

    def wait(self, timeout=60):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return "timeout"


def wait_for(pred, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def basics(tmp):
    n = Nestor(tmp, "basic", ["-smp", "2", SPIN])
    q = Qmp(n.sock, negotiate=False)
    g = q.greeting.get("QMP", {})
    check("version" in g and "qemu" in g["version"] and g.get("capabilities") == [], "greeting", q.greeting)
    r = q.cmd("query-status")
    check(r.get("error", {}).get("class") == "CommandNotFound", "commands wait for negotiation", r)
    q.send_raw(b'{"execute": "qmp_capabilities", "id": "n1"}\r\n')
    r = q.reply()
    check(r == {"return": {}, "id": "n1"}, "qmp_capabilities with id", r)
    r = q.cmd("qmp_capabilities")
    check("error" in r, "negotiation only once", r)
    r = q.cmd("query-version")
    check(r["return"]["qemu"]["major"] >= 1 and "nestor" in r["return"]["package"], "query-version", r)
    names = {c["name"] for c in q.cmd("query-commands")["return"]}
    want = {"qmp_capabilities", "query-status", "stop", "cont", "system_reset", "system_powerdown",
            "quit", "query-cpus-fast", "human-monitor-command", "migrate", "query-migrate",
            "migrate_cancel", "migrate-incoming"}
    check(want <= names, "query-commands", want - names)
    r = q.cmd("query-status")["return"]
    check(r["status"] == "running" and r["running"] is True, "query-status running", r)
    cpus = q.cmd("query-cpus-fast")["return"]
    check(len(cpus) == 2 and [c["cpu-index"] for c in cpus] == [0, 1] and cpus[0]["target"] == "x86_64",
          "query-cpus-fast", cpus)
    # stop: the STOP event, paused, the guest makes no progress
    wait_for(lambda: len(n.spins()) >= 2)
    r = q.cmd("stop")
    ev = q.event("STOP")
    check(r == {"return": {}} and ev is not None and "timestamp" in ev, "stop and STOP event", (r, ev))
    st = q.cmd("query-status")["return"]
    check(st["status"] == "paused" and st["running"] is False, "query-status paused", st)
    regs1 = q.cmd("human-monitor-command", **{"command-line": "info registers"})["return"]
    before = n.spins()
    time.sleep(0.6)
    regs2 = q.cmd("human-monitor-command", **{"command-line": "info registers"})["return"]
    check(n.spins() == before and regs1 == regs2 and "rip=" in regs1 and "CPU#1" in regs1,
          "paused guest makes no progress", (len(before), len(n.spins())))
    r = q.cmd("human-monitor-command", **{"command-line": "info nothing"})
    check("unknown command" in r.get("return", ""), "unknown HMP command", r)
    r = q.cmd("cont")
    ev = q.event("RESUME")
    check(r == {"return": {}} and ev is not None, "cont and RESUME event", (r, ev))
    check(wait_for(lambda: len(n.spins()) > len(before) + 1), "resumed guest runs", len(n.spins()))
    # a second client at once: both hear the events
    q2 = Qmp(n.sock)
    check(q2.cmd("query-status")["return"]["status"] == "running", "second client", "")
    q2.cmd("stop")
    check(q.event("STOP") is not None and q2.event("STOP") is not None, "events reach every client", "")
    q2.cmd("cont")
    # malformed and oversized input: an error, and the connection goes on
    q.send_raw(b'{"execute": "query-status", ]\r\n')
    r = q.reply()
    check(r.get("error", {}).get("class") == "GenericError", "malformed JSON", r)
    check(q.cmd("query-status").get("return", {}).get("status") == "running", "connection survives malformed JSON", "")
    q.send_raw(b'{"execute": "query-status", "arguments": {"x": "' + b"a" * 100000 + b'"}}\r\n')
    r = q.reply()
    check(r.get("error", {}).get("class") == "GenericError" and "longer" in r["error"]["desc"], "oversized message", r)
    # what was left of it arrives as more garbage: errors until the stream is clean again
    q.s.settimeout(1)
    try:
        while True:
            q.recv()
    except socket.timeout:
        pass
    q.buf = b""
    q.s.settimeout(20)
    check(q.cmd("query-status").get("return", {}).get("status") == "running", "connection survives oversized input", "")
    for raw, what in ((b'[1, 2]\r\n', "not an object"), (b'{"arguments": {}}\r\n', "no execute"),
                      (b'{"execute": "query-status", "arguments": 5}\r\n', "arguments not an object")):
        q.send_raw(raw)
        r = q.reply()
        check(r.get("error", {}).get("class") == "GenericError", "refused: " + what, r)
    r = q.cmd("no-such-command")
    check(r.get("error", {}).get("class") == "CommandNotFound", "unknown command", r)
    # quit: SHUTDOWN from the host, status 0
    r = q.cmd("quit")
    ev = q.event("SHUTDOWN")
    st = n.wait()
    check(r == {"return": {}} and ev and ev["data"] == {"guest": False, "reason": "host-qmp-quit"} and st == 0,
          "quit", (r, ev, st))


def power_and_reset(tmp):
    n = Nestor(tmp, "power", [SPIN])
    q = Qmp(n.sock)
    wait_for(lambda: len(n.spins()) >= 1)
    r = q.cmd("system_reset")
    ev = q.event("RESET")
    check(r == {"return": {}} and ev is not None, "system_reset and RESET event", (r, ev))
    check(wait_for(lambda: n.output().count("spin: started") == 2), "the guest starts again after system_reset",
          n.output().count("spin: started"))
    check(q.cmd("query-status")["return"]["status"] == "running", "running after system_reset", "")
    r = q.cmd("system_powerdown")
    ev = q.event("POWERDOWN")
    sd = q.event("SHUTDOWN")
    st = n.wait()
    check(r == {"return": {}} and ev is not None and "spin: power button" in n.output() and st == 0
          and sd and sd["data"]["guest"] is True, "system_powerdown reaches the guest's ACPI", (r, ev, sd, st))


def hyperv_crash(tmp):
    """A guest's crash report through Hyper-V's crash MSRs: QMP's GUEST_PANICKED with the
    five parameters (QEMU's event, "hyper-v" info), then the run ends with status 4."""
    elf = os.path.join(os.path.dirname(SPIN), "hv_basic.elf")
    n = Nestor(tmp, "hvcrash", ["-S", "-cpu", "max,hv-crash", "-append", "cpu=max,hv-crash mode=crash", elf])
    q = Qmp(n.sock)
    q.cmd("cont")  # started paused: the client is there before the crash
    ev = q.event("GUEST_PANICKED")
    st = n.wait()
    info = (ev or {}).get("data", {}).get("info", {})
    want = {"type": "hyper-v", "arg1": 0xc0de0000, "arg2": 0xc0de0001, "arg3": 0xc0de0002,
            "arg4": 0xc0de0003, "arg5": 0xc0de0004}
    check(ev is not None and info == want and st == 4 and "reported a crash" in n.stderr(),
          "hyper-v crash: GUEST_PANICKED with the crash parameters, status 4", (ev, st))


def xen_powerdown(tmp, via="qmp"):
    """A Xen guest is asked to power off through xenstore (control/shutdown = poweroff, as
    `xl shutdown` asks), by QMP's system_powerdown or a first SIGTERM: Debian's kernel as
    a PVH guest sees its watch fire and powers off in order; nestor exits 0."""
    if not os.path.exists(os.path.join(LINUX, "vmlinux")):
        return check(False, "xen powerdown", "no build/linux/vmlinux (tests/linux fetches it)")
    n = Nestor(tmp, "xenpower-" + via, ["-xen", "-m", "256M", "-kernel", os.path.join(LINUX, "vmlinux"),
                                        "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"),
                                        "-append", "console=ttyS0 nestor.script=1 nestor.wait=600"])
    q = Qmp(n.sock)
    if not check(wait_for(lambda: "== waiting" in n.output(), 180), "xen (%s): the guest waits" % via,
                 n.output()[-300:]):
        n.p.kill()
        return
    if via == "qmp":
        r = q.cmd("system_powerdown")
        ev = q.event("POWERDOWN")
    else:
        n.p.send_signal(signal.SIGTERM)
        r, ev = {"return": {}}, True
    sd = q.event("SHUTDOWN", timeout=120)
    st = n.wait(120)
    out = n.output()
    check(r == {"return": {}} and ev is not None and st == 0 and sd and sd["data"]["guest"] is True
          and "orderly poweroff requested" in out and "reboot: Power down" in out
          and "waiting: over" not in out and "xenbus: error" not in out,
          "xen: %s through xenstore's control/shutdown powers the guest off"
          % ("system_powerdown" if via == "qmp" else "a first SIGTERM"), (r, ev, sd, st, out[-300:]))


def xen_hvc_console(tmp):
    """console=hvc0 is interactive: the kernel and a shell on the PV console, what is
    typed on nestor's console reaching the shell through the ring's input half."""
    if not os.path.exists(os.path.join(LINUX, "vmlinux")):
        return check(False, "xen hvc0", "no build/linux/vmlinux (tests/linux fetches it)")
    out = os.path.join(tmp, "hvc.out")
    p = subprocess.Popen([NESTOR, "run", "-xen", "-m", "256M", "-kernel", os.path.join(LINUX, "vmlinux"),
                          "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"), "-append", "console=hvc0"],
                         stdin=subprocess.PIPE, stdout=open(out, "wb"), stderr=subprocess.STDOUT)
    text = lambda: open(out, "rb").read().decode(errors="replace")
    if not check(wait_for(lambda: "nestor initramfs:" in text(), 180), "xen hvc0: the kernel and init on hvc0",
                 text()[-300:]):
        p.kill()
        return
    time.sleep(1)
    p.stdin.write(b"echo HVC-$((6*7))\npoweroff -f\n")
    p.stdin.flush()
    try:
        st = p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        st = "timeout"
    check(st == 0 and "HVC-42" in text() and "reboot: Power down" in text(),
          "xen hvc0: typed commands reach the shell on hvc0", (st, text()[-300:]))


def file_migration(tmp):
    f = os.path.join(tmp, "saved.state")
    n = Nestor(tmp, "fsrc", ["-smp", "2", SPIN])
    q = Qmp(n.sock)
    wait_for(lambda: len(n.spins()) >= 2)
    r = q.cmd("migrate", uri="file:" + f)
    m = q.cmd("query-migrate")["return"]
    st = q.cmd("query-status")["return"]["status"]
    check(r == {"return": {}} and m.get("status") == "completed" and st == "postmigrate",
          "migrate to a file", (r, m, st))
    last = max(n.spins())
    q.cmd("quit")
    n.wait()
    d = Nestor(tmp, "fdst", ["-smp", "2", "-incoming", "file:" + f, SPIN])
    qd = Qmp(d.sock)
    ok = wait_for(lambda: len(d.spins()) >= 2)
    check(ok and d.spins()[0] == last + 1 and "spin: started" not in d.output(),
          "restored from the file, the guest goes on", (last, d.spins()[:3]))
    qd.cmd("quit")
    d.wait()


def live_migration(tmp, transport):
    port_or_path = os.path.join(tmp, "mig.sock") if transport == "unix" else str(47000 + os.getpid() % 1000)
    uri = "unix:" + port_or_path if transport == "unix" else "tcp:127.0.0.1:" + port_or_path
    d = Nestor(tmp, "ldst-" + transport, ["-smp", "2", "-incoming", "defer", SPIN])
    qd = Qmp(d.sock)
    st = qd.cmd("query-status")["return"]["status"]
    check(st == "inmigrate", "-incoming defer waits (%s)" % transport, st)
    s = Nestor(tmp, "lsrc-" + transport, ["-smp", "2", SPIN])
    qs = Qmp(s.sock)
    wait_for(lambda: len(s.spins()) >= 2)
    # the destination listens once migrate-incoming has been given
    r = qd.cmd("migrate-incoming", uri=uri)
    check(r == {"return": {}}, "migrate-incoming (%s)" % transport, r)
    time.sleep(0.3)
    r = qs.cmd("migrate", uri=uri)
    check(r == {"return": {}}, "migrate (%s) accepted" % transport, r)
    states = []
    deadline = time.time() + 60
    while time.time() < deadline:
        ev = qs.event("MIGRATION", timeout=max(0.1, deadline - time.time()))
        if not ev:
            break
        states.append(ev["data"]["status"])
        if ev["data"]["status"] in ("completed", "failed", "cancelled"):
            break
    m = qs.cmd("query-migrate")["return"]
    check(states and states[-1] == "completed" and "active" in states, "MIGRATION events (%s)" % transport, states)
    ram = m.get("ram", {})
    check(m.get("status") == "completed" and ram.get("total", 0) > 250 * 2**20 and ram.get("transferred", 0) > 24 * 2**20
          and "downtime" in m and ram.get("dirty-sync-count", 0) >= 1, "query-migrate (%s)" % transport, m)
    check(qs.cmd("query-status")["return"]["status"] == "postmigrate", "the source waits, paused (%s)" % transport, "")
    last = max(s.spins())
    ok = wait_for(lambda: len(d.spins()) >= 2)
    check(ok and d.spins()[0] == last + 1, "the destination goes on where the source stopped (%s)" % transport,
          (last, d.spins()[:3]))
    check(qd.cmd("query-status")["return"]["status"] == "running", "destination running (%s)" % transport, "")
    qs.cmd("quit")
    qd.cmd("quit")
    s.wait()
    d.wait()


def failed_and_cancelled(tmp):
    s = Nestor(tmp, "fail", [SPIN])
    q = Qmp(s.sock)
    wait_for(lambda: len(s.spins()) >= 1)
    r = q.cmd("migrate", uri="unix:" + os.path.join(tmp, "nobody-listens"))
    st = q.cmd("query-status")["return"]["status"]
    n0 = len(s.spins())
    check("error" in r and st == "running" and wait_for(lambda: len(s.spins()) > n0),
          "a migration that cannot connect leaves the source running", (r, st))
    r = q.cmd("migrate", uri="ftp:somewhere")
    check("error" in r, "unknown migration URI", r)
    # a destination that reads slowly: cancel while active
    path = os.path.join(tmp, "slow.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    stop = threading.Event()

    def slow_reader():
        c, _ = ls.accept()
        c.settimeout(0.2)
        while not stop.is_set():
            try:
                if not c.recv(65536):
                    break
            except socket.timeout:
                pass
            time.sleep(0.02)
        c.close()
    t = threading.Thread(target=slow_reader)
    t.start()
    r = q.cmd("migrate", uri="unix:" + path)
    time.sleep(0.5)
    m1 = q.cmd("query-migrate")["return"]
    r2 = q.cmd("migrate_cancel")
    ev = None
    deadline = time.time() + 20
    while time.time() < deadline:
        ev = q.event("MIGRATION", timeout=5)
        if not ev or ev["data"]["status"] == "cancelled":
            break
    m2 = q.cmd("query-migrate")["return"]
    st = q.cmd("query-status")["return"]["status"]
    n0 = len(s.spins())
    ran = wait_for(lambda: len(s.spins()) > n0)
    stop.set()
    t.join()
    ls.close()
    check(r == {"return": {}} and m1.get("status") == "active" and r2 == {"return": {}} and
          m2.get("status") == "cancelled" and st == "running" and ran,
          "migrate_cancel: the source goes on", (m1.get("status"), m2.get("status"), st, ran))
    q.cmd("quit")
    s.wait()


LINUX = os.path.abspath(os.path.join(BUILD, "linux"))


def linux_migration(tmp, xen=False):
    """Debian's kernel migrated over TCP while memstress keeps writing 96 MiB: the guest
    finishes on the destination, every page as it must be. With xen, as a Xen PVH guest:
    its shared_info, grant frames, event channels and timers go along."""
    tag = "linux-xen" if xen else "linux"
    if not os.path.exists(os.path.join(LINUX, "vmlinux")):
        return check(False, tag + " live migration", "no build/linux/vmlinux (tests/linux fetches it)")
    port = str(46000 + os.getpid() % 1000 + (1000 if xen else 0))
    args = (["-xen"] if xen else []) + ["-m", "512M", "-smp", "2", "-kernel", os.path.join(LINUX, "vmlinux"),
            "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"),
            "-append", "console=ttyS0 nestor.script=1 nestor.memstress=10"]
    d = Nestor(tmp, tag + "dst", args + ["-incoming", "tcp:127.0.0.1:" + port], qmp=False)
    time.sleep(0.5)
    s = Nestor(tmp, tag + "src", args)
    q = Qmp(s.sock)
    if not check(wait_for(lambda: "memstress: started" in s.output(), 180), tag + ": memstress runs",
                 s.output()[-300:]):
        s.p.kill()
        d.p.kill()
        return
    wait_for(lambda: "page writes" in s.output(), 30)
    r = q.cmd("migrate", uri="tcp:127.0.0.1:" + port)
    ev = None
    deadline = time.time() + 180
    while time.time() < deadline:
        ev = q.event("MIGRATION", timeout=max(0.1, deadline - time.time()))
        if not ev or ev["data"]["status"] in ("completed", "failed", "cancelled"):
            break
    m = q.cmd("query-migrate")["return"]
    check(r == {"return": {}} and ev and ev["data"]["status"] == "completed",
          tag + ": live migration while memstress writes (total %s ms, downtime %s ms, %s passes, "
          "%s bytes)" % (m.get("total-time"), m.get("downtime"), m.get("ram", {}).get("dirty-sync-count"),
                         m.get("ram", {}).get("transferred")), m)
    q.cmd("quit")
    s.wait()
    st = d.wait(240)
    out = d.output()
    v = re.search(r"memstress: verified (\d+) pages after (\d+) page writes, (\d+) wrong", out)
    check(st == 0 and v and v.group(3) == "0" and "== done" in out and "memstress: started" not in out,
          tag + ": the destination finishes, its memory checks out", (st, v and v.group(0), out[-300:]))
    bad = re.findall(r"(Oops|BUG:|Kernel panic|soft lockup|rcu_sched detected stall)", out)
    check(not bad, tag + ": no kernel complaints after the migration", bad)


def main():
    if not os.path.exists(SPIN):
        check(False, "setup", SPIN + " not built (make guests)")
        return 1
    with tempfile.TemporaryDirectory(prefix="nestor-qmp-") as tmp:
        for test in (basics, power_and_reset, hyperv_crash, xen_powerdown, lambda t: xen_powerdown(t, "sigterm"),
                     xen_hvc_console,
                     file_migration,
                     lambda t: live_migration(t, "unix"), lambda t: live_migration(t, "tcp"),
                     failed_and_cancelled, linux_migration, lambda t: linux_migration(t, xen=True)):
            try:
                test(tmp)
            except Exception as e:  # a hung or dead nestor: one failure, go on
                check(False, getattr(test, "__name__", "test"), "%s: %s" % (type(e).__name__, e))
    return 0 if all(r.startswith("PASS") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
