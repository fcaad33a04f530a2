#!/usr/bin/env python3
"""Generates tests/diff/gp_forms.inc: the general-purpose instruction forms of the
differential test, assembled with GNU as (Intel syntax).

Run from the repository root: python3 tests/diff/gen_gp_forms.py > tests/diff/gp_forms.inc
Each form: assembly text (also its name), mode (64 or 32), compared flags, options,
pointer registers (pointing into the data buffer), ignored registers, setup/flags
callbacks (defined in gp_cases.c) and their argument."""
import os
import re
import subprocess
import sys
import tempfile

REG = {'rax': 0, 'rcx': 1, 'rdx': 2, 'rbx': 3, 'rsp': 4, 'rbp': 5, 'rsi': 6, 'rdi': 7,
       'eax': 0, 'ecx': 1, 'edx': 2, 'ebx': 3, 'esp': 4, 'ebp': 5, 'esi': 6, 'edi': 7}
for n in range(8, 16):
    REG['r%d' % n] = n
    REG['r%dd' % n] = n

forms = []


def F(asm, flags='DF_ALL', mode=64, ptr=None, ignore=(), setup='0', fn='0', arg=0, opts='0', name=None,
      model=None, native=None):
    """model: CPU model of the engine for this form; native: what the host runs instead."""
    if ptr is None:  # base registers inside brackets point into the data buffer
        ptr = [r for r in re.findall(r'\[([a-z0-9]+)', asm) if r in REG]
    if name is None:
        name = asm if mode == 64 else asm + ' [32]'
        if model:
            name += ' {%s}' % model
    forms.append(dict(asm=asm, flags=flags, mode=mode, ptr=ptr, ignore=ignore, setup=setup,
                      fn=fn, arg=arg, opts=opts, name=name, model=model, native=native))


# operands by size: register pairs (including high-byte and REX registers) and memory
R = {8: [('al', 'cl'), ('ah', 'bl'), ('r9b', 'sil'), ('dh', 'ch')],
     16: [('ax', 'cx'), ('r10w', 'dx')],
     32: [('eax', 'ecx'), ('r11d', 'r12d')],
     64: [('rax', 'rcx'), ('r13', 'r14')]}
PTR = {8: 'byte ptr', 16: 'word ptr', 32: 'dword ptr', 64: 'qword ptr'}
M = {8: 'byte ptr [rbx+0x10]', 16: 'word ptr [rbx-0x7]', 32: 'dword ptr [rbx]', 64: 'qword ptr [rbx+0x21]'}
ACC = {8: 'al', 16: 'ax', 32: 'eax', 64: 'rax'}
SIZES = (8, 16, 32, 64)
NOAF = 'DF_ALL & ~DF_AF'

# ---- two-operand arithmetic/logic ----
for op in ('add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp', 'test'):
    fl = NOAF if op in ('or', 'and', 'xor', 'test') else 'DF_ALL'
    for s in SIZES:
        for a, b in R[s]:
            F('%s %s, %s' % (op, a, b), fl)
        a, b = R[s][0]
        F('%s %s, %s' % (op, M[s], b), fl)
        if op != 'test':
            F('%s %s, %s' % (op, b, M[s]), fl)
        imm = {8: '0x5a', 16: '0x1234', 32: '0x87654321', 64: '-0x789abcd'}[s]
        F('%s %s, %s' % (op, ACC[s], imm), fl)
        F('%s %s, %s' % (op, R[s][-1][0], imm), fl)
        F('%s %s, 0x40' % (op, M[s]), fl)
        if s > 8 and op != 'test':
            F('%s %s, -3' % (op, R[s][-1][1]), fl)  # 83 /n ib, sign-extended
for op in ('add', 'sub', 'adc', 'sbb', 'xor', 'cmp'):  # 32-bit code, 16-bit operands
    F('%s eax, ecx' % op, mode=32)
    F('%s cx, word ptr [ebx+2]' % op, mode=32)
    F('%s dl, 0x81' % op, mode=32)
F('.byte 0x82, 0xc0, 0x85', name='add al, 0x85 (82 /0)', mode=32)

# ---- one-operand arithmetic ----
for op in ('inc', 'dec', 'neg', 'not'):
    for s in SIZES:
        F('%s %s' % (op, R[s][0][0]))
        F('%s %s' % (op, R[s][-1][1]))
        F('%s %s' % (op, M[s]))
    F('%s ah' % op)
for r in ('eax', 'ecx', 'esp', 'edi', 'bx'):  # one-byte 40-4F forms
    F('inc %s' % r, mode=32)
    F('dec %s' % r, mode=32)

# ---- shifts and rotates ----
for k, op in enumerate(('rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sar')):
    for s in SIZES:
        reg = R[s][0][0]
        for cnt in ('1', '5', '0x21', 'cl'):
            if cnt == '0x21' and s < 32 and op not in ('rcl', 'rcr'):
                cnt = '0x11'
            arg = k | (s // 8) << 4 | ((0xff if cnt == 'cl' else int(cnt, 0)) << 8)
            F('%s %s, %s' % (op, reg, cnt), fn='flags_shift', arg=arg)
        F('%s %s, cl' % (op, M[s]), fn='flags_shift', arg=k | (s // 8) << 4 | 0xff << 8)
        F('%s %s, 1' % (op, M[s]), fn='flags_shift', arg=k | (s // 8) << 4 | 1 << 8)
    F('%s ah, cl' % op, fn='flags_shift', arg=k | 1 << 4 | 0xff << 8)
F('.byte 0xd0, 0xf0', name='sal al, 1 (d0 /6)', fn='flags_shift', arg=4 | 1 << 4 | 1 << 8)
F('.byte 0xc1, 0xf0, 0x03', name='sal eax, 3 (c1 /6)', fn='flags_shift', arg=4 | 4 << 4 | 3 << 8)
for k, op in ((7, 'shld'), (8, 'shrd')):
    for s in (16, 32, 64):
        a, b = R[s][0]
        for cnt in ('1', '7', 'cl'):
            arg = k | (s // 8) << 4 | ((0xff if cnt == 'cl' else int(cnt, 0)) << 8)
            F('%s %s, %s, %s' % (op, a, b, cnt), fn='flags_shift', arg=arg, setup='setup_shld16' if s == 16 else '0')
        F('%s %s, %s, cl' % (op, M[s], b), fn='flags_shift', arg=k | (s // 8) << 4 | 0xff << 8,
          setup='setup_shld16' if s == 16 else '0')

# ---- multiply and divide ----
MULF = 'DF_CF | DF_OF | DF_DF'
for s in SIZES:
    F('mul %s' % R[s][0][1], MULF)
    F('mul %s' % M[s], MULF)
    F('imul %s' % R[s][0][1], MULF)
    F('imul %s' % M[s], MULF)
    for op, sg in (('div', 0), ('idiv', 1)):
        F('%s %s' % (op, R[s][0][1]), 'DF_DF', setup='setup_div', arg=(s // 8) | sg << 8 | 1 << 12,
          opts='DIFF_ALLOW_FAULT')
        F('%s %s' % (op, M[s]), 'DF_DF', setup='setup_div', arg=(s // 8) | sg << 8 | 0xf << 12,
          opts='DIFF_ALLOW_FAULT')
F('mul ah', MULF)
F('div bh', 'DF_DF', setup='setup_div', arg=1 | 0xe << 12, opts='DIFF_ALLOW_FAULT')
for s in (16, 32, 64):
    a, b = R[s][0]
    F('imul %s, %s' % (a, b), MULF)
    F('imul %s, %s' % (b, M[s]), MULF)
    F('imul %s, %s, 0x7b' % (a, b), MULF)
    F('imul %s, %s, -0x3' % (a, M[s]), MULF)
    F('imul %s, %s, %s' % (a, b, {16: '0x1234', 32: '0x12345678', 64: '-0x12345678'}[s]), MULF)

# ---- data movement ----
for s in SIZES:
    for a, b in R[s]:
        F('mov %s, %s' % (a, b))
    F('mov %s, %s' % (M[s], R[s][0][1]))
    F('mov %s, %s' % (R[s][0][1], M[s]))
    F('mov %s, %s' % (R[s][-1][0], {8: '0x9c', 16: '0xbeef', 32: '0xdeadbeef', 64: '-0x21524111'}[s]))
    F('mov %s, 0x7f' % M[s])
F('movabs rdx, 0x123456789abcdef0')
F('movabs al, [0x200900]')
F('movabs [0x200910], eax')
F('movabs rax, [0x200918]')
F('mov eax, ds')
F('mov word ptr [rbx], ss')
F('mov rcx, ss')
F('mov ds, ax', setup='setup_zero_reg', arg=0)
F('mov es, word ptr [rbx+8]', setup='setup_zero_mem16', arg=8)
F('mov eax, ds', mode=32)
for d, srcs in (('movzx', ('cl', 'ah', 'byte ptr [rbx+3]')), ('movsx', ('cl', 'bh', 'byte ptr [rbx+3]'))):
    for dst in ('ax', 'ecx', 'rdx', 'r9w', 'r10d'):
        for sr in srcs:
            if (dst == 'rdx' or dst[1].isdigit()) and sr in ('ah', 'bh'):
                continue
            F('%s %s, %s' % (d, dst, sr))
    for dst in ('ecx', 'rdx'):
        F('%s %s, si' % (d, dst))
        F('%s %s, word ptr [rbx+5]' % (d, dst))
F('movsxd rax, ecx')
F('movsxd r8, dword ptr [rbx+4]')
F('.byte 0x63, 0xc1', name='movsxd eax, ecx (63 without REX.W)')
for lea in ('lea rax, [rcx+rdx*4+0x12345678]', 'lea eax, [rcx+rdx*2-0x10]', 'lea ax, [rbx+rsi]',
            'lea rdx, [rip+0x40]', 'lea r12, [r13+r14*8]', 'lea rcx, [rsp+rbp*1+8]', 'lea eax, [ecx+edx*8+3]',
            'lea rax, [0x12345678]', 'lea r15d, [rbp-1]', 'lea cx, [eax+ebx]', 'lea rsi, [rsi+rsi*2]'):
    F(lea, ptr=[])
F('lea eax, [ecx+edx*4+0x100]', mode=32, ptr=[])
F('lea ax, [bx+si+5]', mode=32, ptr=[])
for a, b in (('rax', 'rcx'), ('ecx', 'edx'), ('ax', 'r9w'), ('al', 'ch'), ('ah', 'al'), ('eax', 'eax'), ('r8', 'rax')):
    F('xchg %s, %s' % (a, b))
for s in SIZES:
    F('xchg %s, %s' % (M[s], R[s][0][1]))
F('.byte 0x87, 0xc0', name='xchg eax, eax (87 c0)')
for x in ('cbw', 'cwde', 'cdqe', 'cwd', 'cdq', 'cqo'):
    F(x)

# ---- stack ----
for x in ('push rcx', 'push r12', 'push rsp', 'push cx', 'push 0x12', 'push -0x80', 'push 0x12345678',
          'push -0x12345678', 'push qword ptr [rbx+8]', 'push word ptr [rbx]', 'push fs', 'push gs',
          'pop rcx', 'pop r12', 'pop rsp', 'pop cx', 'pop qword ptr [rbx]', 'pop word ptr [rbx+2]',
          'pop qword ptr [rsp]', 'pop qword ptr [rsp+8]', 'push qword ptr [rsp+8]', 'pop sp'):
    F(x)
F('.byte 0x66, 0x6a, 0x80', name='pushw -0x80 (66 6a)')
F('.byte 0x66, 0x68, 0x34, 0x12', name='pushw 0x1234 (66 68)')
for x in ('push eax', 'push esp', 'push 0x7f', 'push dword ptr [ebx]', 'pop edx', 'pop esp', 'pop dword ptr [ebx+4]',
          'push es', 'push ds', 'push ss', 'push cs', 'push fs', 'pushad', 'popad', 'pushaw', 'popaw', 'push bx',
          'pop bx', 'pop dword ptr [esp]'):
    F(x, mode=32)
F('pop es', mode=32, setup='setup_stack_zero')
F('pop ds', mode=32, setup='setup_stack_zero')
# ENTER with nesting levels (the level is taken modulo 32; RBP points into the buffer, so
# the frame pointers copied from [RBP-8k] are the buffer's), LEAVE
for x in ('enter 0x20, 0', 'enter 0x10, 1', 'enter 0x18, 2', 'enter 0, 5', 'enter 0x1234, 31',
          'leave'):
    F(x, ptr=['rbp'])
F('.byte 0xc8, 0x08, 0x00, 0x21', name='enter 8, 33 (level mod 32)', ptr=['rbp'])
F('.byte 0x66, 0xc8, 0x10, 0x00, 0x03', name='enterw 16, 3 (66 c8)', ptr=['rbp'])
F('.byte 0x66, 0xc9', name='leavew (66 c9)', ptr=['rbp'])
for x in ('enter 0x10, 3', 'enter 0, 1', 'leave'):
    F(x, mode=32, ptr=['rbp'])
F('.byte 0x66, 0xc8, 0x04, 0x00, 0x02', name='enterw 4, 2 (66 c8) [32]', mode=32, ptr=['rbp'])

# ---- LOOPcc / JrCXZ: with displacement 0 both ways reach the next instruction, so the
# harness compares the count register they decrement (RCX, ECX or CX by address size)
for b, what in (('0xe2, 0x00', 'loop +0 (rcx)'), ('0xe1, 0x00', 'loope +0 (rcx)'),
                ('0xe0, 0x00', 'loopne +0 (rcx)'), ('0x67, 0xe2, 0x00', 'loop +0 (67: ecx)'),
                ('0x67, 0xe1, 0x00', 'loope +0 (67: ecx)'), ('0xe3, 0x00', 'jrcxz +0'),
                ('0x67, 0xe3, 0x00', 'jecxz +0 (67)')):
    F('.byte ' + b, name=what)
for b, what in (('0xe2, 0x00', 'loop +0 (ecx) [32]'), ('0x67, 0xe2, 0x00', 'loop +0 (67: cx) [32]'),
                ('0x67, 0xe0, 0x00', 'loopne +0 (67: cx) [32]'), ('0x67, 0xe3, 0x00', 'jcxz +0 (67) [32]')):
    F('.byte ' + b, name=what, mode=32)

# ---- flags ----
for x in ('lahf', 'sahf', 'cmc', 'clc', 'stc', 'cld', 'std'):
    F(x)

# ---- atomics ----
for s in SIZES:
    a, b = R[s][0]
    F('xadd %s, %s' % (a, b))
    F('xadd %s, %s' % (M[s], b))
    F('lock xadd %s, %s' % (M[s], b))
    F('cmpxchg %s, %s' % (R[s][-1][0], R[s][-1][1]), setup='setup_cmpxchg_reg', arg=(s // 8) | REG.get(R[s][-1][0], 0) << 8 if s > 8 else 0)
    F('cmpxchg %s, %s' % (M[s], b), setup='setup_cmpxchg_mem', arg=(s // 8))
    F('lock cmpxchg %s, %s' % (M[s], b), setup='setup_cmpxchg_mem', arg=(s // 8))
F('xadd eax, eax')
F('cmpxchg8b qword ptr [rbx]', setup='setup_cmpxchg_mem', arg=0x108)
F('lock cmpxchg8b qword ptr [rbx]', setup='setup_cmpxchg_mem', arg=0x108)
F('cmpxchg16b xmmword ptr [rbx]', setup='setup_cmpxchg_mem', arg=0x210, opts='DIFF_ALLOW_FAULT')
F('cmpxchg8b qword ptr [ebx+4]', mode=32, setup='setup_cmpxchg_mem', arg=0x108 | 4 << 16)
for x in ('bswap eax', 'bswap rcx', 'bswap r9', 'bswap r10d', '.byte 0x66, 0x0f, 0xc9'):
    F(x, name='bswap cx (66 0f c9)' if x.startswith('.byte') else None)
F('xlat', ptr=['rbx'])
F('.byte 0x48, 0xd7', name='rex.w xlat', ptr=['rbx'])
F('xlat', mode=32, ptr=['rbx'])

# ---- BCD (32-bit code only) ----
for x in ('daa', 'das'):
    F(x, "DF_ALL & ~DF_OF", mode=32)
for x in ('aaa', 'aas'):
    F(x, 'DF_AF | DF_CF | DF_DF', mode=32)
for x in ('aam', 'aam 7', 'aad', 'aad 7', 'aad 0'):
    F(x, 'DF_SF | DF_ZF | DF_PF | DF_DF', mode=32)
F('aam 0', 'DF_ALL', mode=32, opts='DIFF_ALLOW_FAULT')
F('bound eax, qword ptr [ebx]', mode=32, setup='setup_bound', arg=4, opts='DIFF_ALLOW_FAULT')
F('bound cx, dword ptr [ebx+2]', mode=32, setup='setup_bound', arg=2 | 1 << 8 | 2 << 12, opts='DIFF_ALLOW_FAULT')

# ---- no-ops ----
for x in ('nop', 'xchg ax, ax', 'nop dword ptr [rax]', 'nop word ptr [rax+rax*1+0]', 'endbr64', 'endbr32',
          'prefetcht0 [rbx]', 'prefetcht1 [rbx]', 'prefetcht2 [rbx]', 'prefetchnta [rbx]', 'prefetchw [rbx]',
          'clflush [rbx]', 'clflushopt [rbx]', 'lfence', 'mfence', 'sfence'):
    F(x, ptr=['rbx'])
F('.byte 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00', name='nop 8 bytes (0f 1f 84)')
F('.byte 0x0f, 0x0d, 0x03', name='prefetch [rbx] (0f 0d /0)', ptr=['rbx'])
# the hint-NOP space holding MPX, CLDEMOTE and CET encodings: NOPs on a CPU without them
for b, what in (('0x0f, 0x1a, 0x03', 'bndldx bnd0, [rbx] (0f 1a /r)'),
                ('0x66, 0x0f, 0x1a, 0x03', 'bndmov bnd0, [rbx] (66 0f 1a /r)'),
                ('0xf3, 0x0f, 0x1a, 0x0b', 'bndcl bnd1, [rbx] (f3 0f 1a /r)'),
                ('0xf2, 0x0f, 0x1a, 0xc1', 'bndcu bnd0, rcx (f2 0f 1a c1)'),
                ('0x66, 0x0f, 0x1a, 0xe1', 'bndmov bnd4, bnd1 (66 0f 1a e1)'),
                ('0x0f, 0x1b, 0x03', 'bndstx [rbx], bnd0 (0f 1b /r)'),
                ('0xf3, 0x0f, 0x1b, 0x03', 'bndmk bnd0, [rbx] (f3 0f 1b /r)'),
                ('0xf2, 0x0f, 0x1b, 0xc0', 'bndcn bnd0, rax (f2 0f 1b c0)'),
                ('0x0f, 0x1c, 0x03', 'cldemote [rbx] (0f 1c /0)'),
                ('0xf3, 0x0f, 0x1e, 0xc9', 'rdsspd ecx (f3 0f 1e c9)'),
                ('0xf3, 0x48, 0x0f, 0x1e, 0xc9', 'rdsspq rcx (f3 48 0f 1e c9)'),
                ('0x0f, 0x19, 0x03', 'nop [rbx] (0f 19 /r)'),
                ('0x0f, 0x1d, 0xc1', 'nop ecx (0f 1d c1)'),
                ('0x0f, 0x18, 0x23', 'prefetch hint [rbx] (0f 18 /4)')):
    F('.byte ' + b, name=what, ptr=['rbx'])
F('.byte 0xd6', name='salc (d6)', mode=32)
# ARPL (63, 32-bit code): raises the RPL of a 16-bit destination, ZF says whether it did
F('arpl ax, cx', mode=32)
F('arpl word ptr [ebx+2], dx', mode=32)
F('.byte 0x66, 0x63, 0xd1', name='arpl cx, dx (66 63 d1)', mode=32)

# ---- SETcc / CMOVcc ----
CC = ('o', 'no', 'b', 'nb', 'z', 'nz', 'be', 'nbe', 's', 'ns', 'p', 'np', 'l', 'nl', 'le', 'nle')
for cc in CC:
    F('set%s cl' % cc)
    F('cmov%s eax, ecx' % cc)
    F('cmov%s rdx, qword ptr [rbx+8]' % cc)
F('setz ah')
F('setb byte ptr [rbx]')
F('cmovz ax, cx')
F('cmovs r9w, word ptr [rbx]')
F('cmovl r10d, dword ptr [rbx+4]')
F('cmovnz ecx, dword ptr [rbx]')

# ---- bit instructions ----
for op in ('bt', 'bts', 'btr', 'btc'):
    for s in (16, 32, 64):
        a, b = R[s][0]
        F('%s %s, %s' % (op, a, b), 'DF_CF | DF_ZF | DF_DF')
        F('%s %s, 0x%x' % (op, a, s + 3), 'DF_CF | DF_ZF | DF_DF')
        F('%s %s, 0x%x' % (op, M[s], s + 5), 'DF_CF | DF_ZF | DF_DF')
        F('%s %s, %s' % (op, M[s], b), 'DF_CF | DF_ZF | DF_DF', setup='setup_bitoff', arg=1)
    F('lock %s dword ptr [rbx], ecx' % op if op != 'bt' else 'bt dword ptr [rbx+rcx*1], ecx',
      'DF_CF | DF_ZF | DF_DF', setup='setup_bitoff', arg=1)
for op in ('bsf', 'bsr'):
    for s in (16, 32, 64):
        a, b = R[s][0]
        F('%s %s, %s' % (op, a, b), 'DF_ZF | DF_DF')
        F('%s %s, %s' % (op, b, M[s]), 'DF_ZF | DF_DF')
for op in ('popcnt', 'lzcnt', 'tzcnt'):
    fl = 'DF_ALL' if op == 'popcnt' else 'DF_CF | DF_ZF | DF_DF'
    for s in (16, 32, 64):
        a, b = R[s][0]
        F('%s %s, %s' % (op, a, b), fl)
    F('%s edx, dword ptr [rbx]' % op, fl)
BMI = {'andn': 'DF_SF | DF_ZF | DF_CF | DF_OF | DF_DF', 'bextr': 'DF_ZF | DF_CF | DF_OF | DF_DF',
       'blsi': 'DF_SF | DF_ZF | DF_CF | DF_OF | DF_DF', 'blsmsk': 'DF_SF | DF_ZF | DF_CF | DF_OF | DF_DF',
       'blsr': 'DF_SF | DF_ZF | DF_CF | DF_OF | DF_DF', 'bzhi': 'DF_SF | DF_ZF | DF_CF | DF_OF | DF_DF',
       'mulx': 'DF_ALL', 'pdep': 'DF_ALL', 'pext': 'DF_ALL', 'sarx': 'DF_ALL', 'shlx': 'DF_ALL',
       'shrx': 'DF_ALL'}
for op, fl in BMI.items():
    for (d, a, b) in (('eax', 'ecx', 'edx'), ('rax', 'rcx', 'rdx'), ('r8', 'r9', 'r10')):
        if op in ('blsi', 'blsmsk', 'blsr'):
            F('%s %s, %s' % (op, d, a), fl)
        elif op in ('andn', 'mulx', 'pdep', 'pext'):
            F('%s %s, %s, %s' % (op, d, a, b), fl)
        else:  # bextr/bzhi/sarx/shlx/shrx: r, r/m, r(vvvv)
            F('%s %s, %s, %s' % (op, d, a, b), fl, setup='setup_bmi_ctl' if op in ('bextr', 'bzhi') else '0')
    if op in ('blsi', 'blsmsk', 'blsr'):
        F('%s ecx, dword ptr [rbx]' % op, fl)
    elif op in ('andn', 'mulx', 'pdep', 'pext'):
        F('%s rcx, rdx, qword ptr [rbx]' % op, fl)
    else:
        F('%s ecx, dword ptr [rbx], esi' % op, fl, setup='setup_bmi_ctl' if op in ('bextr', 'bzhi') else '0')
F('mulx rdx, rdx, rcx')
for x in ('rorx eax, ecx, 5', 'rorx rax, rcx, 0x3f', 'rorx r9, qword ptr [rbx], 0x21'):
    F(x)
for x in ('movbe ax, word ptr [rbx]', 'movbe ecx, dword ptr [rbx+1]', 'movbe r9, qword ptr [rbx+3]',
          'movbe word ptr [rbx], dx', 'movbe dword ptr [rbx+2], ecx', 'movbe qword ptr [rbx], r10'):
    F(x)
for x in ('adcx eax, ecx', 'adcx rax, rcx', 'adcx r9, qword ptr [rbx]', 'adox eax, ecx', 'adox rax, rcx',
          'adox edx, dword ptr [rbx]'):
    F(x)

# ---- string instructions ----
for base in ('movs', 'cmps', 'scas', 'lods', 'stos'):
    for suf in ('b', 'w', 'd', 'q'):
        x = base + suf
        fl = 'DF_ALL'
        for pre in ('', 'rep ', 'repne ') if base in ('cmps', 'scas') else ('', 'rep '):
            if pre == 'rep ' and base in ('cmps', 'scas'):
                pre = 'repe '
            F(pre + x, fl, ptr=['rsi', 'rdi'], setup='setup_string', arg=0)
    F('.byte 0x67, 0xf3, 0xa4', name='rep movsb (addr32)', ptr=['rsi', 'rdi'], setup='setup_string')
    F('.byte 0x67, 0xf3, 0xa6', name='repe cmpsb (addr32)', ptr=['rsi', 'rdi'], setup='setup_string')
    F('.byte 0xf2, 0xa4', name='repne movsb (f2 repeats)', ptr=['rsi', 'rdi'], setup='setup_string')
    F('.byte 0x3e, 0xf3, 0x48, 0xa5', name='rep movsq ds:', ptr=['rsi', 'rdi'], setup='setup_string')
for x in ('rep movsd', 'repe cmpsw', 'repne scasb', 'lodsd', 'rep stosw', 'movsb'):
    F(x, mode=32, ptr=['esi', 'edi'], setup='setup_string')
F('.byte 0x26, 0xa4', name='movsb es:[esi] (26 a4)', mode=32, ptr=['esi', 'edi'], setup='setup_string')
for x in ('insb', 'insd', 'outsb', 'outsw', 'rep insb', 'rep outsd'):
    F(x, ptr=['rsi', 'rdi'], opts='DIFF_ALLOW_FAULT', setup='setup_string')

# ---- invalid prefixes and privileged forms: the fault is compared ----
for code, name in (('0xf0, 0x01, 0xc8', 'lock add eax, ecx (register destination)'),
                   ('0xf0, 0x89, 0x03', 'lock mov [rbx], eax'), ('0xf0, 0x90', 'lock nop'),
                   ('0xf0, 0x0f, 0xbc, 0x03', 'lock bsf eax, [rbx]'), ('0x0f, 0x20, 0xc0', 'mov rax, cr0'),
                   ('0x0f, 0x22, 0xd8', 'mov cr3, rax'), ('0x0f, 0x21, 0xf8', 'mov rax, dr7'),
                   ('0x8e, 0xc8', 'mov cs, ax'), ('0x27', 'daa (64-bit: invalid)'), ('0x60', 'pusha (64-bit: invalid)'),
                   ('0x62, 0x03', 'bound (64-bit: invalid)'), ('0x0f, 0xc7, 0xc8', 'cmpxchg8b eax (register)'),
                   ('0x8d, 0xc1', 'lea eax, ecx (register)')):
    F('.byte ' + code, name=name, ptr=['rbx'], opts='DIFF_ALLOW_FAULT')

# ---- features the CPU model turns off: #UD, or the older meaning of the encoding ----
F('lzcnt eax, ecx', 'DF_ZF | DF_DF', model='max,-abm', native='bsr eax, ecx')
F('lzcnt rax, qword ptr [rbx]', 'DF_ZF | DF_DF', model='max,-abm', native='bsr rax, qword ptr [rbx]')
F('tzcnt ax, cx', 'DF_ZF | DF_DF', model='max,-bmi1', native='bsf ax, cx')
F('tzcnt r9d, dword ptr [rbx]', 'DF_ZF | DF_DF', model='max,-bmi1', native='bsf r9d, dword ptr [rbx]')
for asm, feat in (('popcnt eax, ecx', 'popcnt'), ('andn eax, ecx, edx', 'bmi1'), ('blsr rax, rcx', 'bmi1'),
                  ('bzhi eax, ecx, edx', 'bmi2'), ('pdep rax, rcx, rdx', 'bmi2'),
                  ('movbe eax, dword ptr [rbx]', 'movbe'), ('adcx eax, ecx', 'adx'),
                  ('cmpxchg16b xmmword ptr [rbx]', 'cx16'), ('lahf', 'lahf_lm'), ('sahf', 'lahf_lm'),
                  ('cmovz eax, ecx', 'cmov'), ('clflush [rbx]', 'clflush'), ('lfence', 'sse2'),
                  ('cmpxchg8b qword ptr [rbx]', 'cx8')):
    F(asm, model='max,-' + feat, native='ud2', opts='DIFF_ALLOW_FAULT', ptr=['rbx'])

# ---- assemble ----
def assemble(asm, mode):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, 'a.s')
        with open(src, 'w') as f:
            f.write('.intel_syntax noprefix\n.code%d\n%s\n' % (mode, asm))
        obj = os.path.join(d, 'a.o')
        subprocess.run(['as', '--64', '-o', obj, src], check=True)
        out = os.path.join(d, 'a.bin')
        subprocess.run(['objcopy', '-O', 'binary', '-j', '.text', obj, out], check=True)
        return open(out, 'rb').read()


def cstr(b):
    return '"' + ''.join('\\x%02x' % x for x in b) + '"'


def regmask(regs):
    m = 0
    for r in regs:
        m |= 1 << REG[r]
    return '0x%x' % m


print('/* Generated by tests/diff/gen_gp_forms.py: do not edit. */')
seen = set()
unique = []
for f in forms:
    if f['name'] not in seen:
        seen.add(f['name'])
        unique.append(f)
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(8) as pool:
    codes = list(pool.map(lambda f: assemble(f['asm'], f['mode']), unique))
    natives = list(pool.map(lambda f: assemble(f['native'], f['mode']) if f['native'] else None, unique))
for f, code, native in zip(unique, codes, natives):
    extra = ', 0, 0, 0'
    if f['model']:
        extra = ', "%s", %s, %d' % (f['model'], cstr(native) if native else '0', len(native) if native else 0)
    print('{ "%s", %s, %d, %s, (%s), %s, %s, %s, %s, %s, %sL%s },' % (
        f['name'], cstr(code), len(code), 'DIFF_MODE64' if f['mode'] == 64 else 'DIFF_MODE32',
        f['flags'], f['opts'], regmask(f['ptr']), regmask(f['ignore']), f['setup'], f['fn'], f['arg'], extra))
print('/* %d forms */' % len(seen), file=sys.stderr)
