#!/usr/bin/env python3
"""Save/restore exactness: a run saved at instruction N (-save-at) and resumed in a new
process (-incoming) must print the same serial output, end with the same status and
reach the same final state digest (-state-digest) as the run that was never
interrupted. Points are random (STATE_SEED fixes them; printed with every failure) and
chosen at the moments that matter, found in an instruction trace (-d insn gives each
instruction's count): right after MOV SS and STI (an interrupt shadow, data breakpoints
held by MOV SS), in the middle of REP string instructions, right after VMLAUNCH/VMRESUME
and VMRUN (an event injected into L2) and after VM exits, after STGI/CLGI. A restored machine saved again at once
must give the same file (nothing loaded is left out of the description), and broken or
foreign files must be refused with status 2.

Prints PASS/FAIL lines for tests/run.sh."""
import concurrent.futures
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

BUILD = os.environ.get("BUILD", "build")
NESTOR = os.environ.get("NESTOR", os.path.join(BUILD, "nestor"))
GUEST = os.path.join(BUILD, "guest")
SEED = int(os.environ.get("STATE_SEED", random.randrange(1 << 30)))
POINTS = int(os.environ.get("STATE_POINTS", "3"))
TIMEOUT = 300

# name, kernel, extra options, random points
RUNS = [
    ("exceptions", "exceptions.elf", [], POINTS),
    ("paging", "paging.elf", [], POINTS),
    ("paging-la57", "paging_la57.elf", [], POINTS),
    ("paging32", "paging32.elf", [], POINTS),
    ("modes32", "modes32.elf", [], POINTS),
    ("seg32", "seg32.elf", [], POINTS),
    ("insn32", "insn32.elf", [], POINTS),
    ("longmode", "longmode.elf", [], POINTS),
    ("insn64", "insn64.elf", [], POINTS),
    ("smc", "smc.elf", [], POINTS),
    ("fpu", "fpu.elf", [], POINTS),
    ("flags", "flags.elf", [], POINTS),
    ("debug", "debug.elf", [], POINTS),
    ("debug2", "debug2.elf", [], POINTS),
    ("debug2-amd", "debug2.elf", ["-cpu", "max,vendor=AuthenticAMD"], POINTS),
    ("pmu", "pmu.elf", [], POINTS),
    ("system64", "system64.elf", [], POINTS),
    ("testdev", "testdev.elf", ["-device", "pc-testdev", "-device", "pci-testdev",
                                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x4"], POINTS),
    ("smp", "smp.elf", ["-smp", "4"], POINTS),
    ("smp-fair", "smp_fair.elf", ["-smp", "2", "-append", "icount=1"], POINTS),
    ("acpi-s3", "acpi_s3.elf", ["-smp", "2", "-append", "icount=1"], POINTS),
    ("vmx-basic", "vmx_basic.elf", [], POINTS),
    ("vmx-entry", "vmx_entry.elf", [], POINTS),
    ("vmx-exits", "vmx_exits.elf", [], POINTS),
    ("vmx-exits2", "vmx_exits2.elf", [], POINTS),
    ("vmx-events", "vmx_events.elf", [], POINTS),
    ("vmx-ept", "vmx_ept.elf", [], POINTS),
    ("vmx-apicv", "vmx_apicv.elf", [], POINTS),
    ("vmx-shadow", "vmx_shadow.elf", [], POINTS),
    ("vmx-nested", "vmx_nested.elf", [], POINTS),
    ("vmx-tsc", "vmx_tsc.elf", [], POINTS),
    ("vmx-vpid", "vmx_vpid.elf", [], POINTS),
    ("vmx-smp", "vmx_smp.elf", ["-smp", "2"], POINTS),
    # SVM: guest mode with its cached VMCB controls, GIF, nested paging, the TLB contexts
    ("svm-basic", "svm_basic.elf", ["-cpu", "max,vendor=AuthenticAMD"], POINTS),
    ("svm-exits", "svm_exits.elf", ["-cpu", "max,vendor=AuthenticAMD"], POINTS),
    ("svm-npt", "svm_npt.elf", ["-cpu", "max,vendor=AuthenticAMD"], POINTS),
    # the Xen interface: shared_info, vcpu_info and time areas, event channels (2-level
    # and FIFO), grant tables with frames and mappings moved around the guest-physical
    # map, ballooned and populated pages, pirqs, timers and the PV console
    ("xen-gntcopy", "xen_gntcopy.elf", ["-xen", "-append", "xen=yes"], POINTS),
    ("xen-gnttab", "xen_gnttab.elf", ["-xen", "-append", "xen=yes"], POINTS),
    ("xen-memop", "xen_memop.elf", ["-xen", "-append", "xen=yes"], POINTS),
    ("xen-memop2", "xen_memop2.elf", ["-xen", "-append", "xen=yes"], POINTS),
    ("xen-fifo", "xen_fifo.elf", ["-xen", "-append", "xen=yes"], POINTS),
    ("xen-evtchn", "xen_evtchn.elf", ["-xen", "-smp", "2", "-append", "xen=yes"], POINTS),
    ("xen-evtchn32", "xen_evtchn32.elf", ["-xen", "-append", "xen=yes"], POINTS),
    ("xen-sched", "xen_sched.elf", ["-xen", "-smp", "2", "-append", "xen=yes icount=1"], POINTS),
    ("xen-pirq", "xen_pirq.elf", ["-xen", "-device", "pc-testdev", "-append", "xen=yes"], POINTS),
    ("xen-pvcons", "xen_pvcons.elf", ["-xen", "-append", "xen=yes"], POINTS),
    ("xen-vcpu", "xen_vcpu.elf", ["-xen", "-smp", "3", "-append", "xen=yes"], POINTS),
    ("xen-upcall", "xen_upcall.elf", ["-xen", "-append", "xen=yes"], POINTS),
    ("hv-stimer", "hv_stimer.elf", ["-smp", "2", "-cpu", "max,hv-vpindex,hv-time,hv-synic,hv-stimer,hv-stimer-direct",
                                    "-append", "cpu=max,hv-vpindex,hv-time,hv-synic,hv-stimer,hv-stimer-direct icount=1"], POINTS),
    ("hv-synic", "hv_synic.elf", ["-smp", "2", "-device", "hyperv-testdev", "-cpu", "max,hv-vpindex,hv-synic",
                                  "-append", "cpu=max,hv-vpindex,hv-synic"], POINTS),
    ("hv-hcall", "hv_hcall.elf", ["-smp", "2", "-cpu", "max,hv-passthrough", "-append", "cpu=max,hv-passthrough"], POINTS),
    ("hv-evmcs", "hv_evmcs.elf", ["-cpu", "max,hv-passthrough", "-append", "cpu=max,hv-passthrough"], POINTS),
    ("hv-xen", "hv_xen.elf", ["-xen", "-cpu", "max,hv-passthrough", "-append", "xen=yes cpu=max,hv-passthrough"], POINTS),
    # SGX: the EPC and its map, enclaves being built, vCPUs inside enclaves (their TLBs
    # holding enclave pages), AEXs and ERESUMEs in flight
    ("sgx-enclave", "sgx_enclave.elf", ["-cpu", "max", "-sgx-epc", "8M", "-append", "cpu=max"], POINTS),
    ("sgx-paging", "sgx_paging.elf", ["-cpu", "max", "-sgx-epc", "8M", "-append", "cpu=max"], POINTS),
    ("sgx-leaves", "sgx_leaves.elf", ["-cpu", "max", "-object", "memory-backend-epc,id=e,size=8M",
                                      "-M", "sgx-epc.0.memdev=e", "-append", "cpu=max"], POINTS),
]
def xen_disk_image(d, linux):
    """An ext4 root for the PV disk run: busybox and an init that reads a file, prints its
    checksum and powers off. None without busybox from tests/linux or mke2fs."""
    busybox = os.path.join(linux, "initramfs-root", "bin", "busybox")
    if not os.path.exists(busybox) or not shutil.which("mke2fs"):
        return None
    root = os.path.join(d, "xen-disk-root")
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("bin", "sbin", "proc", "sys", "dev", "data"):
        os.makedirs(os.path.join(root, sub))
    shutil.copy(busybox, os.path.join(root, "bin", "busybox"))
    for tool in ("sh", "mount", "cat", "echo", "sha256sum", "dmesg", "poweroff", "cut"):
        os.symlink("busybox", os.path.join(root, "bin", tool))
    with open(os.path.join(root, "sbin", "init"), "w") as f:
        f.write("#!/bin/sh\nmount -t proc proc /proc\nmount -t sysfs sysfs /sys\n"
                "echo \"== disk\"\necho \"disk: $(sha256sum < /data/file | cut -d' ' -f1)\"\n"
                "echo \"== done\"\npoweroff -f\n")
    os.chmod(os.path.join(root, "sbin", "init"), 0o755)
    with open(os.path.join(root, "data", "file"), "wb") as f:
        f.write(bytes((i * 7 + i // 4096) & 255 for i in range(3 << 20)))
    img = os.path.join(d, "xen-disk.img")
    if os.path.exists(img):
        os.unlink(img)
    r = subprocess.run(["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-d", root, img, "32M"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return img if r.returncode == 0 else None


# Debian's kernel through PVH on 2 vCPUs, its initramfs script to the end (when
# tests/linux has fetched it)
LINUX = os.path.abspath(os.path.join(BUILD, "linux"))
if os.path.exists(os.path.join(LINUX, "vmlinux")):
    RUNS.append(("linux", os.path.join(LINUX, "vmlinux"),
                 ["-m", "512M", "-smp", "2", "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"),
                  "-append", "console=ttyS0 nestor.script=1"], 2))
    # the same kernel with every Hyper-V enlightenment: the reference TSC page, the
    # direct-mode synthetic timers, the VP assist page's EOI avoidance, hypercall IPIs and
    # TLB flushes in flight across the restore
    RUNS.append(("linux-hyperv", os.path.join(LINUX, "vmlinux"),
                 ["-m", "512M", "-smp", "2", "-cpu", "max,hv-passthrough",
                  "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"),
                  "-append", "console=ttyS0 nestor.script=1"], 2))
    # the same kernel with SGX: its driver, the test's enclave (SGX2, EPC paging) with
    # threads inside enclaves across the restore
    if os.path.exists(os.path.join(BUILD, "tests", "linux", "sgx", "sgx_test")):
        RUNS.append(("linux-sgx", os.path.join(LINUX, "vmlinux"),
                     ["-m", "512M", "-smp", "2", "-cpu", "max", "-sgx-epc", "64M",
                      "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"),
                      "-append", "console=ttyS0 nestor.script=1 nestor.sgx=1"], 2))
    # the same kernel as a Xen PVH guest (shared_info and grant frames placed, FIFO
    # events, Xen's timers and console)
    RUNS.append(("linux-xen", os.path.join(LINUX, "vmlinux"),
                 ["-m", "512M", "-smp", "2", "-xen", "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"),
                  "-append", "console=ttyS0 nestor.script=1"], 2))

    # the same as a Xen guest whose root is a read-only PV disk (an ext4 image made here
    # with mke2fs -d): the disk's rings, requests and persistent grants across the restore
    disk = xen_disk_image(os.path.join(os.path.abspath(BUILD), "tests", "state"), LINUX)
    if disk:
        RUNS.append(("linux-xen-disk", os.path.join(LINUX, "vmlinux"),
                     ["-m", "256M", "-smp", "2", "-xen", "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"),
                      "-append", "console=ttyS0 nestor.root=xvda nestor.rootro=1",
                      "-drive", "file=%s,if=none,id=d,readonly=on" % disk,
                      "-device", "xen-disk,drive=d,vdev=xvda,num-queues=2"], 2))

# Moments, found in the trace of single-vCPU runs: (run, pattern, offsets from the
# matched instruction's count, how many matches to use)
MOMENTS = [
    ("debug2", r"\bmov ss,", (0, 1, 2), 4),     # MOV SS shadow, held data breakpoints
    ("debug2", r"\bpop ss\b", (1, 2), 2),
    ("debug2", r"\bsti\b", (1,), 3),            # STI shadow (TF over STI; HLT)
    ("debug", r"\bpopfq?\b", (1,), 3),          # TF set: a single-step trap due
    ("insn64", r"\brep (stos|movs|cmps|scas|lods)", ("mid",), 4),
    ("smc", r"\brep (stos|movs)", ("mid",), 4),
    ("vmx-events", r"\bvm(launch|resume)\b", (1, 2), 12),  # an event injected into L2
    ("vmx-exits", r"\bvm(launch|resume)\b", (1,), 6),
    ("vmx-ept", r"\bvm(launch|resume)\b", (1,), 4),
    ("vmx-nested", r"\bvm(launch|resume)\b", (1,), 6),
    ("svm-exits", r"\bvmrun\b", (1, 2), 12),  # an event injected into L2, a VINTR
    ("svm-npt", r"\bvmrun\b", (1,), 6),
    ("svm-basic", r"\b(stgi|clgi)\b", (1,), 4),  # GIF just changed, events held
    ("sgx-enclave", r"\benclu\b", (1, 2), 8),   # just inside an enclave, or just out
    ("sgx-leaves", r"\bencls\b", (1,), 6),
    ("xen-gntcopy", r"\bvmcall\b", (1,), 6),  # right after a hypercall
    ("xen-memop2", r"\bvmcall\b", (1,), 6),
    ("xen-fifo", r"\bvmcall\b", (1,), 6),
    ("xen-upcall", r"\bvmcall\b", (1, 2), 8),  # an event sent to itself: its upcall pending
    ("hv-evmcs", r"\bvm(launch|resume)\b", (1,), 6),  # in L2 on an enlightened VMCS
    ("hv-hcall", r"\bvmcall\b", (1,), 6),  # right after a Hyper-V hypercall
]

results = []


def report(ok, name, why=""):
    line = ("PASS" if ok else "FAIL") + " state:" + name + ("" if ok else ": " + why)
    results.append(line)
    print(line, flush=True)


def run(args, tmp, tag, stdout=True):
    out = os.path.join(tmp, tag + ".out")
    err = os.path.join(tmp, tag + ".err")
    with open(out, "wb") as o, open(err, "wb") as e:
        try:
            p = subprocess.run([NESTOR, "run", "-icount"] + args, stdout=o, stderr=e,
                               stdin=subprocess.DEVNULL, timeout=TIMEOUT)
            st = p.returncode
        except subprocess.TimeoutExpired:
            st = "timeout"
    return st, open(out, "rb").read(), open(err, "rb").read().decode(errors="replace")


def digest(err):
    m = re.search(r"state digest ([0-9a-f]{64}) \((\d+) instructions\)", err)
    return (m.group(1), int(m.group(2))) if m else (None, None)


class Reference:
    def __init__(self, name, kernel, opts, tmp):
        self.name, self.opts = name, opts
        self.kernel = kernel if os.path.isabs(kernel) else os.path.join(GUEST, kernel)
        self.status, self.out, err = run(opts + ["-state-digest", self.kernel], tmp, name + ".A")
        self.digest, self.total = digest(err)


def check_point(ref, n, tmp, label):
    tag = "%s@%d" % (ref.name, n)
    f = os.path.join(tmp, tag.replace("@", "_") + ".state")
    sb, ob, eb = run(ref.opts + ["-save-at", "%d:%s" % (n, f), ref.kernel], tmp, tag + ".B")
    round_trip = label == "random"
    if sb != 0 or not os.path.exists(f):
        return report(False, "%s %s" % (tag, label), "the save run ended with %s: %s (seed %d)"
                      % (sb, eb.strip()[-300:], SEED))
    sc, oc, ec = run(ref.opts + ["-state-digest", "-incoming", "file:" + f, ref.kernel], tmp,
                     tag + ".C")
    dc, tc = digest(ec)
    why = []
    if sc != ref.status:
        why.append("status %s after the restore, %s without (%s)" % (sc, ref.status, ec.strip()[-200:]))
    if ob + oc != ref.out:
        why.append("the serial output differs")
    if dc != ref.digest or tc != ref.total:
        why.append("final state %s after %s instructions, %s after %s without"
                   % (dc and dc[:16], tc, ref.digest[:16], ref.total))
    report(not why, "%s %s" % (tag, label), "; ".join(why) + " (seed %d)" % SEED)
    # saved again at once, a restored machine gives the same file
    if not why and round_trip:
        f2 = f + ".again"
        s2, _, e2 = run(ref.opts + ["-incoming", "file:" + f, "-save-at", "%d:%s" % (n, f2),
                                    ref.kernel], tmp, tag + ".D")
        same = s2 == 0 and os.path.exists(f2) and open(f, "rb").read() == open(f2, "rb").read()
        report(same, "%s round-trip" % tag, "status %s, %s" % (s2, e2.strip()[-200:]))
    for p in (f, f + ".again"):
        if os.path.exists(p):
            os.unlink(p)


def moment_points(ref, pattern, offsets, count, tmp, rng):
    trace = os.path.join(tmp, ref.name + ".trace")
    run(ref.opts + ["-d", "insn", "-D", trace, ref.kernel], tmp, ref.name + ".T")
    rx = re.compile(r"^cpu0 \S+  (.*)  #(\d+)$")
    counts = []
    with open(trace, errors="replace") as t:
        for line in t:
            m = rx.match(line.rstrip("\n"))
            if not m:
                continue
            text, n = m.group(1), int(m.group(2))
            counts.append((text, n))
    pat = re.compile(pattern)
    bases = []
    for i, (text, n) in enumerate(counts):
        if pat.search(text):
            if offsets != ("mid",):
                bases.append(n)
            elif 0 < i < len(counts) - 1 and counts[i - 1][0] == text and counts[i + 1][0] == text:
                bases.append(n)  # a REP instruction cut into several executions
    os.unlink(trace)
    rng.shuffle(bases)
    pts = set()
    for n in bases[:count]:
        for o in (0,) if offsets == ("mid",) else offsets:
            if 0 < n + o < ref.total:
                pts.add(n + o)
    return sorted(pts)


def refusals(tmp):
    """Files that are not for this machine, or broken, are refused with status 2."""
    k = os.path.join(GUEST, "fpu.elf")
    f = os.path.join(tmp, "good.state")
    s, _, e = run(["-save-at", "20000:" + f, k], tmp, "refuse.save")
    if s != 0:
        return report(False, "refuse: save", e[-200:])
    data = open(f, "rb").read()
    cases = [
        ("other -m", ["-m", "512M"], data, "different -m"),
        ("other -smp", ["-smp", "2"], data, "different -smp"),
        ("other -cpu", ["-cpu", "max,vendor=AuthenticAMD"], data, "different -cpu"),
        ("other devices", ["-device", "pc-testdev"], data, "different -device"),
        ("truncated", [], data[: len(data) // 2], "truncated"),
        ("no checksum", [], data[:-32], "truncated"),
        ("corrupt byte", [], data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x40])
         + data[len(data) // 2 + 1:], ""),
        ("checksum flipped", [], data[:-1] + bytes([data[-1] ^ 1]), "checksum"),
        ("other format version", [], data[:8] + b"\x63\x00\x00\x00" + data[12:], "format version"),
        ("not a state", [], b"hello world\n" * 100, "not a nestor machine state"),
        ("empty", [], b"", "too short"),
    ]
    for label, opts, blob, want in cases:
        g = os.path.join(tmp, "bad.state")
        open(g, "wb").write(blob)
        s, _, e = run(opts + ["-incoming", "file:" + g, k], tmp, "refuse")
        ok = s == 2 and "-incoming" in e and want in e and "AddressSanitizer" not in e
        report(ok, "refuse: " + label, "status %s: %s" % (s, e.strip()[-300:]))
    # a Xen guest's state belongs to a machine with that Xen interface
    xk = os.path.join(GUEST, "xen_memop2.elf")
    xf = os.path.join(tmp, "xen.state")
    s, _, e = run(["-xen", "-append", "xen=yes", "-save-at", "200000:" + xf, xk], tmp, "refuse.xen")
    if s != 0:
        return report(False, "refuse: save with -xen", "status %s: %s" % (s, e.strip()[-200:]))
    for label, opts in (("without -xen", []), ("other Xen domid", ["-xen", "domid=5"])):
        s, _, e = run(opts + ["-append", "xen=yes", "-incoming", "file:" + xf, xk], tmp, "refuse")
        report(s == 2 and "different -xen" in e, "refuse: Xen state " + label, "status %s: %s" % (s, e.strip()[-200:]))


def main():
    rng = random.Random(SEED)
    only = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="nestor-state-") as tmp:
        runs = [r for r in RUNS if not only or r[0] in only]
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            refs = {}
            for r, ref in zip(runs, pool.map(lambda r: Reference(r[0], r[1], r[2], tmp), runs)):
                if ref.digest is None:
                    report(False, r[0], "the reference run printed no state digest (status %s)" % ref.status)
                else:
                    refs[r[0]] = ref
            jobs = []
            for name, _, _, k in runs:
                if name in refs:
                    for _ in range(k):
                        jobs.append((refs[name], rng.randrange(1, refs[name].total), "random"))
            for name, pattern, offsets, count in MOMENTS:
                if name in refs:
                    pts = moment_points(refs[name], pattern, offsets, count, tmp, rng)
                    if not pts:
                        report(False, "%s moments /%s/" % (name, pattern), "no such instruction in the trace")
                    for n in pts:
                        jobs.append((refs[name], n, "after /%s/" % pattern))
            list(pool.map(lambda j: check_point(j[0], j[1], tmp, j[2]), jobs))
        if not only:
            refusals(tmp)
    return 0 if all(r.startswith("PASS") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
