#!/usr/bin/env python3
"""The gdb stub: gdb's remote protocol spoken directly (packets, acks, no-ack mode, the
target description, registers, memory, breakpoints and watchpoints with their stop
replies, single step, threads, Ctrl-C, detach), then real gdb sessions (`gdb -batch`) on
a guest test kernel and on Debian's kernel. Prints PASS/FAIL lines for tests/run.sh."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("BUILD", "build")
NESTOR = os.environ.get("NESTOR", os.path.join(BUILD, "nestor"))
SPIN = os.path.join(BUILD, "guest", "spin.elf")
SPIN64 = os.path.join(BUILD, "guest", "spin.elf64")
LINUX = os.path.abspath(os.path.join(BUILD, "linux"))
results = []


def check(ok, name, why=""):
    line = ("PASS" if ok else "FAIL") + " gdb:" + name + ("" if ok else ": " + str(why)[:300])
    results.append(line)
    print(line, flush=True)
    return ok


def symbol(name):
    out = subprocess.run(["nm", SPIN64], capture_output=True, text=True).stdout
    m = re.search(r"^([0-9a-f]+) \w %s$" % re.escape(name), out, re.M)
    return int(m.group(1), 16)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Remote:
    def __init__(self, port, timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                self.s = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.s.settimeout(timeout)
        self.buf = b""
        self.ack = True

    def raw(self, data):
        self.s.sendall(data)

    def send(self, payload, csum=None):
        data = payload.encode("latin-1") if isinstance(payload, str) else payload
        c = sum(data) & 0xff if csum is None else csum
        self.raw(b"$" + data + b"#%02x" % c)

    def recv(self):
        """The next packet's payload (acks skipped, and acknowledged when acking)."""
        while True:
            m = re.match(rb"[+-]*\$([^#]*)#([0-9a-f]{2})", self.buf)
            if m:
                self.buf = self.buf[m.end():]
                data = m.group(1)
                if sum(data) & 0xff != int(m.group(2), 16):
                    raise ValueError("bad checksum from the stub")
                if self.ack:
                    self.raw(b"+")
                return data.decode("latin-1")
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d

    def cmd(self, payload):
        self.send(payload)
        return self.recv()


def gdb_regs_64(hexdata):
    b = bytes.fromhex(hexdata)
    names = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + ["r%d" % i for i in range(8, 16)]
    regs = {n: int.from_bytes(b[8 * i:8 * i + 8], "little") for i, n in enumerate(names)}
    regs["rip"] = int.from_bytes(b[128:136], "little")
    regs["eflags"] = int.from_bytes(b[136:140], "little")
    return regs


def protocol(tmp):
    port = free_port()
    n = subprocess.Popen([NESTOR, "run", "-smp", "2", "-gdb", "tcp::%d" % port, "-S", SPIN],
                         stdin=subprocess.DEVNULL, stdout=open(os.path.join(tmp, "p.out"), "wb"),
                         stderr=open(os.path.join(tmp, "p.err"), "wb"))
    r = Remote(port)
    # a bad checksum is refused with '-'
    r.raw(b"$?#00")
    time.sleep(0.2)
    d = r.s.recv(10)
    check(d.startswith(b"-"), "bad checksum answered with -", d)
    r.buf = b""
    sup = r.cmd("qSupported:multiprocess+;xmlRegisters=i386")
    check("qXfer:features:read+" in sup and "PacketSize" in sup, "qSupported", sup)
    check(r.cmd("QStartNoAckMode") == "OK", "no-ack mode", "")
    r.ack = False
    xml = ""
    off = 0
    while True:
        part = r.cmd("qXfer:features:read:target.xml:%x,800" % off)
        xml += part[1:]
        off += len(part) - 1
        if part[0] == "l":
            break
    check("i386:x86-64" in xml and "org.gnu.gdb.i386.core" in xml and 'name="rip"' in xml
          and 'name="xmm15"' in xml and 'name="fs_base"' in xml and 'name="cr3"' in xml,
          "x86-64 target description", xml[:200])
    stop = r.cmd("?")
    check(stop.startswith("T05") and "thread:1;" in stop, "stop reply at -S", stop)
    threads = r.cmd("qfThreadInfo")
    check(threads == "m1,2" and r.cmd("qsThreadInfo") == "l", "two vCPUs, two threads", threads)
    extra = bytes.fromhex(r.cmd("qThreadExtraInfo,2")).decode()
    check("vCPU 1" in extra and "SIPI" in extra, "thread info names the vCPU", extra)
    regs = gdb_regs_64(r.cmd("g"))
    check(regs["rip"] == symbol("_start"), "registers at entry", hex(regs["rip"]))
    # software breakpoint on test_main, continue, the stop reply
    tm = symbol("test_main")
    check(r.cmd("Z0,%x,1" % tm) == "OK", "Z0 accepted", "")
    code_before = r.cmd("m%x,10" % tm)
    stop = r.cmd("vCont;c")
    regs = gdb_regs_64(r.cmd("g"))
    check(stop.startswith("T05") and regs["rip"] == tm, "breakpoint on test_main", (stop, hex(regs["rip"])))
    check(r.cmd("m%x,10" % tm) == code_before, "the guest's code is not patched", "")
    # register write and read back
    check(r.cmd("P0=efbeadde00000000") == "OK" and r.cmd("p0") == "efbeadde00000000", "register write", "")
    # single step moves RIP by one instruction
    r.cmd("z0,%x,1" % tm)
    stop = r.cmd("vCont;s:1")
    regs2 = gdb_regs_64(r.cmd("g"))
    check(stop.startswith("T05") and tm < regs2["rip"] <= tm + 15, "single step", (stop, hex(regs2["rip"])))
    # memory through paging: write and read back; an unmapped address is an error
    sc = symbol("spin_counter")
    check(r.cmd("M%x,8:1122334455667788" % sc) == "OK" and r.cmd("m%x,8" % sc) == "1122334455667788",
          "memory write and read", "")
    check(r.cmd("m7fff00000000,8").startswith("E"), "unmapped memory is an error", "")
    # watchpoints: write, then access
    check(r.cmd("Z2,%x,8" % sc) == "OK", "Z2 accepted", "")
    stop = r.cmd("c")
    check(re.match(r"T05thread:1;watch:%x;" % sc, stop) is not None, "write watchpoint", stop)
    r.cmd("z2,%x,8" % sc)
    check(r.cmd("Z4,%x,8" % sc) == "OK", "Z4 accepted", "")
    stop = r.cmd("c")
    check(re.match(r"T05thread:1;awatch:%x;" % sc, stop) is not None, "access watchpoint", stop)
    r.cmd("z4,%x,8" % sc)
    # the AP: Hg2 reads its registers (waiting for SIPI)
    check(r.cmd("Hg2") == "OK", "Hg selects vCPU 1", "")
    check(len(r.cmd("g")) > 500, "vCPU 1's registers", "")
    check(r.cmd("Hg9").startswith("E"), "no vCPU 8", "")
    r.cmd("Hg1")
    # Ctrl-C while running
    r.send("c")
    time.sleep(0.3)
    r.raw(b"\x03")
    stop = r.recv()
    check(stop.startswith("T02"), "Ctrl-C stops the guest", stop)
    # malformed packets get errors, the session goes on
    check(r.cmd("mzz,8").startswith("E"), "malformed m", "")
    check(r.cmd("Z9,0,0") == "", "unknown breakpoint type", "")
    check(r.cmd("qNoSuchThing") == "", "unknown query", "")
    # detach: the guest runs on
    out_before = open(os.path.join(tmp, "p.out")).read().count("spin ")
    check(r.cmd("D") == "OK", "detach", "")
    deadline = time.time() + 20
    while time.time() < deadline and open(os.path.join(tmp, "p.out")).read().count("spin ") <= out_before:
        time.sleep(0.1)
    check(open(os.path.join(tmp, "p.out")).read().count("spin ") > out_before, "the guest runs after detach", "")
    n.kill()
    n.wait()


def real_gdb(tmp):
    if not shutil.which("gdb"):
        return check(False, "gdb installed", "gdb is missing (scripts/deps.sh installs it)")
    port = free_port()
    n = subprocess.Popen([NESTOR, "run", "-gdb", "tcp::%d" % port, "-S", SPIN], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run(["gdb", "-batch", "-nx", "-ex", "file " + SPIN64, "-ex", "target remote :%d" % port,
                          "-ex", "break test_main", "-ex", "continue", "-ex", "stepi", "-ex", "info registers rip",
                          "-ex", "watch spin_counter", "-ex", "continue", "-ex", "print spin_counter",
                          "-ex", "info threads", "-ex", "kill"],
                         capture_output=True, text=True, timeout=60).stdout
    n.wait(20)
    check("Breakpoint 1, test_main ()" in out, "gdb: break on a function and continue", out[-300:])
    check(re.search(r"rip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <test_main\+\d+>", out) is not None, "gdb: stepi", out[-300:])
    check("Old value = 0" in out and "New value = 1" in out and "$1 = 1" in out, "gdb: watchpoint", out[-300:])
    check("Thread 1 (vCPU 0)" in out, "gdb: threads", out[-300:])
    # a CPU without long mode is an i386 target: a 32-bit test kernel
    k32 = os.path.join(BUILD, "guest", "modes32.elf")
    port = free_port()
    n = subprocess.Popen([NESTOR, "run", "-cpu", "max,-lm", "-gdb", "tcp::%d" % port, "-S", k32],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run(["gdb", "-batch", "-nx", "-ex", "file " + k32, "-ex", "target remote :%d" % port,
                          "-ex", "show architecture", "-ex", "break test_main", "-ex", "continue",
                          "-ex", "info registers eip", "-ex", "kill"],
                         capture_output=True, text=True, timeout=60).stdout
    n.wait(20)
    check("i386" in out and "x86-64" not in out and re.search(r"eip\s+0x[0-9a-f]+\s+0x[0-9a-f]+ <test_main>", out),
          "gdb: an i386 target for a CPU without long mode", out[-300:])


def linux(tmp):
    """Debian's kernel (no debug symbols in the package: the initramfs script prints
    ksys_write's address from /proc/kallsyms) stops at a breakpoint there when its
    script writes, steps, and goes on when gdb detaches."""
    if not os.path.exists(os.path.join(LINUX, "vmlinux")):
        return check(False, "linux", "no build/linux/vmlinux (tests/linux fetches it)")
    port = free_port()
    outp = os.path.join(tmp, "linux.out")
    n = subprocess.Popen([NESTOR, "run", "-m", "512M", "-smp", "2", "-gdb", "tcp::%d" % port,
                          "-kernel", os.path.join(LINUX, "vmlinux"), "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"),
                          "-append", "console=ttyS0 nokaslr nestor.script=1 nestor.gdbtest=1"],
                         stdin=subprocess.DEVNULL, stdout=open(outp, "wb"), stderr=subprocess.DEVNULL)
    addr = None
    deadline = time.time() + 180
    while time.time() < deadline and addr is None:
        m = re.search(r"gdbtest: ([0-9a-f]{16}) T ksys_write", open(outp, errors="replace").read())
        addr = m and m.group(1)
        time.sleep(0.2)
    if not check(addr is not None, "linux: ksys_write's address", open(outp, errors="replace").read()[-300:]):
        n.kill()
        return
    out = subprocess.run(["gdb", "-batch", "-nx", "-ex", "set architecture i386:x86-64",
                          "-ex", "target remote :%d" % port, "-ex", "hbreak *0x%s" % addr, "-ex", "continue",
                          "-ex", "info registers rip", "-ex", "stepi", "-ex", "info registers rip cr3",
                          "-ex", "x/2i $pc", "-ex", "delete", "-ex", "detach"],
                         capture_output=True, text=True, timeout=120).stdout
    check(re.search(r"rip\s+0x%s\b" % addr.lstrip("0"), out) is not None, "linux: hardware breakpoint at ksys_write",
          out[-400:])
    m = re.findall(r"rip\s+0x([0-9a-f]+)", out)
    check(len(m) >= 2 and int(m[1], 16) != int(addr, 16), "linux: stepi", m)
    check(re.search(r"cr3\s+0x[0-9a-f]+", out) is not None and "=> 0xffffffff" in out,
          "linux: registers and kernel memory through paging", out[-300:])
    deadline = time.time() + 120
    while time.time() < deadline and "gdbtest: done" not in open(outp, errors="replace").read():
        time.sleep(0.2)
    st = n.wait(120)
    check("gdbtest: done" in open(outp, errors="replace").read() and st == 0, "linux: runs on after detach", st)


def main():
    if not os.path.exists(SPIN):
        check(False, "setup", SPIN + " not built (make guests)")
        return 1
    with tempfile.TemporaryDirectory(prefix="nestor-gdb-") as tmp:
        for test in (protocol, real_gdb, linux):
            try:
                test(tmp)
            except Exception as e:
                check(False, test.__name__, "%s: %s" % (type(e).__name__, e))
    return 0 if all(r.startswith("PASS") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
