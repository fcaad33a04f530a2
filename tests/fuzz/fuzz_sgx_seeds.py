#!/usr/bin/env python3
"""Seed inputs for tests/fuzz/fuzz_sgx.c: one per SGX scenario the harness can reach, so
that a short run (make check's bounded one) starts from enclave entries, AEXes, paging
and SGX2 flows instead of having to find them. The input format is the harness's (see
its LLVMFuzzerTestOneInput): ctl (4 bytes), four length-prefixed sections (structure
writes, TCS0's enclave code, TCS1's, the 32-bit enclave's), then the CPL-0 program's ops.
An op's kind byte with bit 7 set runs its leaf in compatibility mode.

usage: fuzz_sgx_seeds.py DIR   (writes DIR/NAME for each seed; prints the file names)"""
import os
import struct
import sys

# ---- steering (fuzz_sgx.c: K_*) ----
K = dict(DEFAULT=0, RAW=1, PAGEINFO=2, SECINFO=3, SECS_SRC=4, SRC=5, SIGSTRUCT=6, TOKEN=7,
         PCMD=8, EPC=9, EPC_OFF=10, VA_SLOT=11, ELRANGE=12, ELRANGE_OFF=13, DATA_BUF=14,
         AEP=15, EXIT=16, TCS=17, NONCANONICAL=18, UNMAPPED=19, MMIO=20, FREE_RAM=21,
         SMALL=22, PTE=23, SSA_FIELD=24, XSAVE_FIELD=25)


def st(kind='DEFAULT', arg=0, raw=None):
    """a steered value: selector, 16-bit argument (then 8 raw bytes for RAW)"""
    b = bytes([K[kind]]) + struct.pack('<H', arg)
    if kind == 'RAW':
        b += struct.pack('<Q', raw)
    return b


DEF = st()

# ---- the enclave's code (enclave_program) ----
def e_leaf(leaf, arg=0, rbx=DEF, rcx=DEF, rdx=DEF):
    return bytes([0, leaf]) + struct.pack('<H', arg) + rbx + rcx + rdx


def e_eexit():
    return bytes([3])


def e_store(field_arg, addr=DEF, value=DEF, pte_page=0):
    return bytes([4]) + struct.pack('<H', field_arg) + addr + bytes([pte_page]) + value


def e_load(off_arg, addr=DEF):
    return bytes([6]) + struct.pack('<H', off_arg) + addr


def e_fault(which):
    return bytes([7, which])


def e_spin(n):
    return bytes([8, n])


def e_tf():
    return bytes([9])


def e_reg(reg, value):
    return bytes([14, reg]) + struct.pack('<Q', value)


# ---- the CPL-0 program (kernel_program) ----
ECREATE, EADD, EINIT, EREMOVE, EDBGRD, EDBGWR, EEXTEND, ELDB, ELDU, EBLOCK, EPA, EWB, \
    ETRACK, EAUG, EMODPR, EMODT = range(16)


def encls(leaf, arg=0, rbx=DEF, rcx=DEF, rdx=DEF, compat=False, flags=0):
    """ENCLS at CPL 0; in compatibility mode after an IRETQ with these flags"""
    if compat:
        return bytes([0x80, flags, leaf]) + struct.pack('<H', arg) + rbx + rcx + rdx
    return bytes([0, leaf]) + struct.pack('<H', arg) + rbx + rcx + rdx


def eenter(tcs=0, flags=0, rbx=DEF, rcx=DEF, rdx=DEF, compat=False):
    """ENCLU at CPL 3: leaf byte 0 is EENTER; TCS0 or TCS1 by the argument's bit 0 (in
    compatibility mode: the 32-bit enclave's TCS)"""
    return bytes([0x84 if compat else 4, flags, 0x00]) + struct.pack('<H', tcs) + rbx + rcx + rdx


def eresume(tcs=0, flags=0, compat=False):
    return bytes([0x84 if compat else 4, flags, 0x60]) + struct.pack('<H', tcs) + DEF + DEF + DEF


def aep_iret(n):
    return bytes([11, n])


def sti_hlt():
    return bytes([13, 2])


# ---- input ----
def seed(ctl=0, structs=b'', encl0=b'', encl1=b'', encl32=b'', ops=b''):
    out = struct.pack('<I', ctl)
    for s in (structs, encl0, encl1, encl32):
        assert len(s) < 256
        out += bytes([len(s)]) + s
    return out + ops


def w_struct(offset, value):
    """a quadword of the RAM structures (offset from PAGEINFO, 0x20000)"""
    return bytes([0]) + struct.pack('<H', offset) + value


def w_encl(page, offset, value):
    """a quadword of an unmeasured enclave page: 0 SSA0, 1 SSA0+1, 2 data, 3 SSA1, 4 copy"""
    return bytes([0x80 + page]) + struct.pack('<H', offset) + value


IRQ = 1 << 7  # an interrupt every 20 instructions (vector 20h)
HALFWAY = 1 << 28
INIT = 1 << 29
PI1 = 32          # PAGEINFO[1] offset: linaddr, srcpge, secinfo, secs
D_KEYREQUEST = 0x000


def seeds():
    s = {}
    s['enter-exit'] = seed(ops=eenter())
    s['enter-exit-tcs1'] = seed(ops=eenter(1))
    for leaf in range(10):
        s['inside-leaf-%d' % leaf] = seed(encl0=e_leaf(leaf), ops=eenter())
    for key in range(5):
        s['egetkey-%d' % key] = seed(structs=w_encl(2, D_KEYREQUEST, st('SMALL', key)),
                                     encl0=e_leaf(1), ops=eenter())
    for f in range(16):
        s['fault-%d' % f] = seed(encl0=e_fault(f), ops=eenter() + eresume() + eenter() + eenter())
    s['aex-irq'] = seed(ctl=IRQ, encl0=e_spin(255), ops=eenter(flags=1) + eresume(flags=1) + eenter(flags=1))
    s['aex-aep-iret'] = seed(ctl=IRQ, encl0=e_spin(255), ops=aep_iret(3) + eenter(flags=1))
    s['aex-nmi'] = seed(ctl=HALFWAY, encl0=e_spin(255) * 8, ops=eenter() * 40)
    s['aex-init'] = seed(ctl=HALFWAY | INIT, encl0=e_spin(255) * 8, ops=eenter() * 40)
    s['aex-tf'] = seed(encl0=e_tf() + e_load(0x4000) + e_eexit(), ops=eenter(flags=2))
    # AEX-Notify: TCS0 has it; ERESUME enters at OENTRY, EDECCSSA inside
    s['aex-notify'] = seed(encl0=e_fault(0) + e_leaf(9), ops=eenter() + eresume() + eresume())
    # an SSA frame the enclave wrote: RIP non-canonical, XSAVE header bits
    s['ssa-rip'] = seed(encl0=e_fault(0), ops=eenter() + eresume(),
                        structs=w_encl(0, 0xf48 + 136, st('NONCANONICAL', 1)))
    s['ssa-xsave'] = seed(encl0=e_fault(0), ops=eenter() + eresume(),
                          structs=w_encl(0, 512, st('SMALL', 0xff)))
    # paging: EPA on page 20, EBLOCK/ETRACK/EWB the copy page (EPC 8), ELDU it back
    eld_pi = (w_struct(PI1, st('ELRANGE', 7)) + w_struct(PI1 + 16, st('PCMD', 0)) +
              w_struct(PI1 + 24, st('EPC', 0)) + w_struct(PI1 + 8, st('SRC', 0)))
    paging = (encls(EPA, 20) + encls(EBLOCK, 8) + encls(ETRACK, 0) + encls(EWB, 8, rdx=st('VA_SLOT', 20)))
    s['paging-ewb'] = seed(ops=paging)
    s['paging-eldu'] = seed(structs=eld_pi, ops=paging + encls(ELDU, 8, rbx=st('PAGEINFO', 1),
                                                              rdx=st('VA_SLOT', 20)) + eenter())
    s['paging-eldb'] = seed(structs=eld_pi, ops=paging + encls(ELDB, 8, rbx=st('PAGEINFO', 1),
                                                              rdx=st('VA_SLOT', 20)) + eenter())
    s['paging-secs'] = seed(ops=encls(EPA, 20) + encls(EWB, 0, rdx=st('VA_SLOT', 20)))
    # SGX2: EAUG at +0x9000 (EPC 10), EACCEPT inside, a store there
    s['eaug-eaccept'] = seed(encl0=e_leaf(5, 9) + e_store(0, st('ELRANGE', 9)) + e_eexit(),
                             ops=encls(EAUG, 10) + eenter())
    s['eaug-eacceptcopy'] = seed(
        structs=w_encl(2, 0x800, st('RAW', 0, 0x203)),
        encl0=e_leaf(7, 9), ops=encls(EAUG, 10) + eenter())
    s['emodpr'] = seed(structs=w_struct(0x100 + 192, st('SMALL', 1)) +
                       w_encl(2, 0x800, st('RAW', 0, 0x221)),
                       encl0=e_leaf(5, 7) + e_store(0, st('ELRANGE', 7)),
                       ops=encls(EMODPR, 8) + encls(ETRACK, 0) + eenter() + eenter())
    s['emodt-trim'] = seed(structs=w_encl(2, 0x800, st('RAW', 0, 0x410)),
                           encl0=e_leaf(5, 7),
                           ops=encls(EMODT, 8) + encls(ETRACK, 0) + eenter() + encls(EREMOVE, 8))
    s['emodt-untracked'] = seed(structs=w_encl(2, 0x800, st('RAW', 0, 0x410)),
                                encl0=e_leaf(5, 7), ops=encls(EMODT, 8) + eenter())
    s['emodt-tcs'] = seed(structs=w_struct(0x100 + 192, st('RAW', 0, 0x100)) +
                          w_encl(2, 0x800, st('RAW', 0, 0x110)),
                          encl0=e_leaf(5, 7) + e_store(0, st('ELRANGE_OFF', 0x7000), st('SMALL', 7)) +
                          e_eexit(),
                          ops=eenter() + encls(EMODT, 8) + encls(ETRACK, 0) + eenter() +
                          eenter(rbx=st('ELRANGE', 7)))
    s['emodpe'] = seed(structs=w_encl(2, 0x800, st('SMALL', 7)), encl0=e_leaf(6, 7), ops=eenter())
    # a second enclave: ECREATE (BASE2 at EPC 17), EADD a TCS and a page, EEXTEND, EINIT
    # (wrong measurement), EREMOVE everything
    s['build'] = seed(ops=encls(ECREATE, 17) + encls(EADD, 18) +
                      encls(EADD, 19, rbx=st('PAGEINFO', 1)) + encls(EEXTEND, 18) +
                      encls(EINIT, 17) + encls(EREMOVE, 17) + encls(EREMOVE, 18) +
                      encls(EREMOVE, 19) + encls(EREMOVE, 17))
    # EDBGRD of TCS0's OENTRY, EDBGWR of its FLAGS (DBGOPTIN), of its STATE (refused)
    s['debug'] = seed(ops=encls(EDBGRD, 0x0401) + encls(EDBGWR, 0x0101, rbx=st('SMALL', 1)) +
                      encls(EDBGWR, 0x0001) + encls(EDBGRD, 0x0008) + eenter(flags=2))
    s['remove-busy'] = seed(ops=encls(EREMOVE, 0) + encls(EREMOVE, 5) + encls(EBLOCK, 0) +
                            encls(ETRACK, 1) + encls(EWB, 5, rdx=st('VA_SLOT', 20)))
    # ERESUME proper (TCS1 has no AEX-Notify, TCS0 has): an interrupt's AEX, then ERESUME
    # with interrupts off (the loop finishes, EEXIT), or again and again from the AEP
    s['tcs1-aex-eresume'] = seed(ctl=IRQ, encl1=e_spin(60) + e_eexit(),
                                 ops=eenter(1, flags=1) + eresume(1) + eresume(1))
    s['tcs1-aep-iret'] = seed(ctl=IRQ, encl1=e_spin(100), ops=aep_iret(5) + eenter(1, flags=1))
    # ERESUME of a frame the enclave wrote: TCS1 given two SSA frames (its fields from
    # section 1: OSSA, NSSA 2, OENTRY, FS, GS, flags, limits); an interrupt's AEX, then an
    # entry at CSSA 1 (interrupts off) that stores into frame 0 and leaves, then ERESUME
    tcs1_nssa2 = bytes([0xf0]) + DEF + bytes([2]) + DEF + DEF + DEF + bytes([0]) + bytes(8)
    gpr = lambda k: (2 + k) << 8 | 2          # K_SSA_FIELD: GPRSGX quadword k of TCS1's frame 0
    xs = lambda f: f << 8 | 2                 # K_XSAVE_FIELD: field f of TCS1's frame 0
    for name, store in (('rip', e_store(gpr(17), value=st('NONCANONICAL', 1))),
                        ('rflags', e_store(gpr(16), value=st('RAW', 0, 0xffffffffffffffff))),
                        ('notify', e_store(gpr(20), value=st('RAW', 0, 0x0100000000000000))),
                        ('fsbase', e_store(gpr(21), value=st('NONCANONICAL', 3))),
                        ('rsp', e_store(gpr(4), value=st('UNMAPPED', 1))),
                        ('xstate-bv', e_store(xs(3), st('XSAVE_FIELD', xs(3)), st('SMALL', 0xff))),
                        ('xcomp-bv', e_store(xs(4), st('XSAVE_FIELD', xs(4)), st('SMALL', 1))),
                        ('mxcsr', e_store(xs(1), st('XSAVE_FIELD', xs(1)), st('RAW', 0, 0xffff0000ffff)))):
        s['tcs1-ssa-' + name] = seed(ctl=IRQ, structs=tcs1_nssa2,
                                     encl1=e_spin(60) + store + e_eexit(),
                                     ops=eenter(1, flags=1) + eenter(1) + eresume(1))
    # the 32-bit enclave, entered and left in compatibility mode
    s['compat-enter-exit'] = seed(ops=eenter(compat=True))
    for leaf in (0, 1, 4, 5, 9):
        s['compat-inside-leaf-%d' % leaf] = seed(encl32=e_leaf(leaf), ops=eenter(compat=True))
    for f in (0, 2, 3, 13, 14):
        s['compat-fault-%d' % f] = seed(encl32=e_fault(f) + e_load(0x4000) + e_tf(),
                                       ops=eenter(compat=True) + eresume(compat=True) +
                                       eenter(compat=True))
    s['compat-aex-irq'] = seed(ctl=IRQ, encl32=e_spin(255),
                               ops=aep_iret(2) + eenter(flags=1, compat=True) + eresume(flags=1, compat=True))
    s['compat-fsgs'] = seed(encl32=bytes([11, 0x10, 0x00]) + e_store(0, st('SSA_FIELD', 0x1000)),
                            ops=eenter(compat=True) + eresume(compat=True))
    s['compat-64-enclave'] = seed(ops=eenter(rbx=st('TCS', 0), compat=True) + eenter(rbx=st('RAW', 0, 0x40000000)))
    s['compat-encls'] = seed(structs=w_struct(0x1000 + 48, st('SMALL', 2)),
                             ops=encls(ECREATE, 41, compat=True) + encls(EADD, 42, compat=True) +
                             encls(EDBGRD, 0x0401, compat=True) + encls(EREMOVE, 41, compat=True))
    s['compat-eaug'] = seed(encl32=e_leaf(5, 5), ops=encls(EAUG, 38, compat=True,
                                                           rbx=st('PAGEINFO', 3)) + eenter(compat=True))
    s['pte-remap'] = seed(ops=bytes([10, 2]) + st('DEFAULT') + bytes([9]) + DEF + eenter())
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        path = os.path.join(out, name)
        with open(path, 'wb') as f:
            f.write(data)
        print(path)


if __name__ == '__main__':
    main()
