#!/usr/bin/env python3
"""Save, restore and live migration of a 1 GiB Debian guest (2 vCPUs) while memstress
keeps writing 96 MiB of it (bench/run.sh, section 7): the time QMP's migrate to a file
takes and the file's size, the time a new nestor takes to load it (process start to its
first QMP answer, the guest running again), and a live migration over loopback TCP
(query-migrate's total time and downtime). One run each."""
import importlib.util
import os
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("qmp_test", os.path.join(here, "..", "tests", "qmp", "qmp_test.py"))
t = importlib.util.module_from_spec(spec)
spec.loader.exec_module(t)

LINUX = os.path.abspath(os.path.join(t.BUILD, "linux"))
ARGS = ["-m", "1G", "-smp", "2", "-kernel", os.path.join(LINUX, "vmlinux"),
        "-initrd", os.path.join(LINUX, "initramfs.cpio.gz"),
        "-append", "console=ttyS0 nestor.script=1 nestor.memstress=60"]


def started(n):
    return t.wait_for(lambda: "page writes" in n.output(), 240)


def main():
    with tempfile.TemporaryDirectory(prefix="nestor-bench-") as tmp:
        f = os.path.join(tmp, "saved.state")
        s = t.Nestor(tmp, "src", ARGS)
        q = t.Qmp(s.sock)
        if not started(s):
            print("bench: the guest did not start memstress")
            return 1
        t0 = time.time()
        r = q.cmd("migrate", uri="file:" + f)
        save_s = time.time() - t0
        if r != {"return": {}}:
            print("bench: migrate to file failed:", r)
            return 1
        q.cmd("quit")
        s.wait()
        size = os.path.getsize(f)
        t0 = time.time()
        d = t.Nestor(tmp, "restored", ARGS + ["-incoming", "file:" + f])
        qd = t.Qmp(d.sock, timeout=120)
        st = qd.cmd("query-status")["return"]["status"]
        restore_s = time.time() - t0
        qd.cmd("quit")
        d.wait()
        print("save, 1 GiB Linux guest under memstress: %.2f s, file %.1f MiB (zstd, zero pages skipped)"
              % (save_s, size / 2**20))
        print("restore (process start to the guest running, %s): %.2f s" % (st, restore_s))
        port = str(45000 + os.getpid() % 1000)
        d = t.Nestor(tmp, "dst", ARGS + ["-incoming", "tcp:127.0.0.1:" + port], qmp=False)
        time.sleep(0.5)
        s = t.Nestor(tmp, "src2", ARGS)
        q = t.Qmp(s.sock)
        if not started(s):
            print("bench: the guest did not start memstress")
            return 1
        time.sleep(2)
        q.cmd("migrate", uri="tcp:127.0.0.1:" + port)
        ev = q.event("MIGRATION")
        while ev and ev["data"]["status"] not in ("completed", "failed", "cancelled"):
            ev = q.event("MIGRATION", timeout=300)
        m = q.cmd("query-migrate")["return"]
        q.cmd("quit")
        s.wait()
        d.p.kill()
        d.wait()
        ram = m.get("ram", {})
        print("live migration over loopback TCP, same guest: %s, total %s ms, downtime %s ms, %d passes, "
              "%.1f MiB sent" % (m.get("status"), m.get("total-time"), m.get("downtime"),
                                 ram.get("dirty-sync-count", 0), ram.get("transferred", 0) / 2**20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
