/* The gdb remote-protocol stub: packets, registers, memory, breakpoints, run control. */
#include "control/gdb.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "control/sock.h"
#include "cpu/cpu.h"
#include "machine/machine.h"

#define PACKET_MAX 16384 /* PacketSize we announce; longer input is refused */
#define SIGTRAP 5
#define SIGINT 2

static struct {
    struct machine *m;
    int lfd, fd;
    bool no_ack;
    bool registered;
    bool running;          /* the debugger let the machine run (c, vCont;c) */
    bool start_stopped;
    int gthread, cthread;  /* Hg / Hc: vCPU index, -1 = any */
    struct cpu_host_debug dbg;
    /* input: one packet at a time */
    u8 in[PACKET_MAX + 8];
    size_t in_len;
    bool in_packet, in_escape;
    bool feeding;          /* gdb_feed: not a real connection */
    int in_csum_digits;
    u8 csum_sum;
    char csum[2];
} g = { .lfd = -1, .fd = -1 };

/* ---- output ---- */
static void send_raw(const char *p, size_t n)
{
    while (n && g.fd >= 0) {
        ssize_t w = send(g.fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void put_packet(const char *data)
{
    size_t n = strlen(data);
    char *buf = malloc(n + 5);
    if (!buf)
        return;
    u8 sum = 0;
    buf[0] = '$';
    for (size_t i = 0; i < n; i++) {
        buf[1 + i] = data[i];
        sum += (u8)data[i];
    }
    snprintf(buf + 1 + n, 4, "#%02x", sum);
    send_raw(buf, n + 4);
    free(buf);
}

static void put_packetf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    put_packet(buf);
}

/* ---- hex ---- */
static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static void hex_bytes(char *out, const u8 *p, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* n bytes from hex text; false if malformed */
static bool unhex(const char *s, u8 *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int a = hexval(s[2 * i]), b = a < 0 ? -1 : hexval(s[2 * i + 1]);
        if (b < 0)
            return false;
        p[i] = (u8)(a << 4 | b);
    }
    return true;
}

/* A hex number up to a delimiter: *end points after it. */
static bool parse_hex(const char *s, u64 *v, const char **end)
{
    u64 x = 0;
    int digits = 0;
    while (hexval(*s) >= 0 && digits < 17) {
        x = x << 4 | (u64)hexval(*s++);
        digits++;
    }
    if (!digits || digits > 16)
        return false;
    *v = x;
    *end = s;
    return true;
}

/* ---- registers ---- */
static bool use_i386(void)
{
    /* a CPU model without long mode is an i386 target (QEMU's qemu-system-i386) */
    return !g.m->model.fast.has[CF_LM];
}

static struct cpu *thread_cpu(int t)
{
    struct machine *m = g.m;
    if (t < 0 || t >= m->ncpus)
        t = m->debug_vcpu >= 0 && m->debug_vcpu < m->ncpus ? m->debug_vcpu : 0;
    return m->cpu[t];
}

/* gdb's amd64 order of the general registers */
static const int gpr64[16] = { R_RAX, R_RBX, R_RCX, R_RDX, R_RSI, R_RDI, R_RBP, R_RSP,
                               R_R8,  R_R9,  R_R10, R_R11, R_R12, R_R13, R_R14, R_R15 };
static const int gpr32[8] = { R_RAX, R_RCX, R_RDX, R_RBX, R_RSP, R_RBP, R_RSI, R_RDI };
static const int segs[6] = { SEG_CS, SEG_SS, SEG_DS, SEG_ES, SEG_FS, SEG_GS };

/* One register by its number in the target description: its bytes (little-endian) into
 * p (up to 16), the size, or 0 when there is no such register. write: from p. */
static unsigned reg_access(struct cpu *c, unsigned n, u8 *p, bool write)
{
    bool i386 = use_i386();
    unsigned ngpr = i386 ? 8 : 16, wide = i386 ? 4 : 8, nxmm = i386 ? 8 : 16;
    u64 v = 0;
    unsigned size = 0;
    u64 *target = NULL;
    struct fpu_state *f = &c->fpu;
    unsigned top = (f->fsw >> 11) & 7;
    if (n < ngpr) {
        target = &c->gpr[i386 ? gpr32[n] : gpr64[n]];
        size = wide;
    } else if (n == ngpr) {
        target = &c->rip;
        size = wide;
    } else if (n == ngpr + 1) {
        target = &c->rflags;
        size = 4;
    } else if (n < ngpr + 8) {
        struct seg *sg = &c->seg[segs[n - ngpr - 2]];
        if (write) {
            /* a selector written by the debugger: the hidden part stays as it is */
            u32 sel = (u32)p[0] | (u32)p[1] << 8;
            sg->sel = (u16)sel;
            return 4;
        }
        v = sg->sel;
        size = 4;
    } else if (n < ngpr + 16) {
        /* st0..st7: ST(i) is physical register (TOP + i) mod 8 */
        u8 *st = f->st[(top + n - ngpr - 8) & 7];
        if (write)
            memcpy(st, p, 10);
        else
            memcpy(p, st, 10);
        return 10;
    } else if (n < ngpr + 24) {
        unsigned k = n - ngpr - 16;
        u16 tag = 0;
        for (unsigned r = 0; r < 8; r++)
            tag |= (u16)((f->ftw & (1u << r)) ? 0 : 3) << (2 * r);
        u64 vals[8] = { f->fcw, f->fsw, tag, f->fcs, f->fip, f->fds, f->fdp, f->fop };
        if (write) {
            u32 x = (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
            switch (k) {
            case 0: f->fcw = (u16)x; break;
            case 1: f->fsw = (u16)x; break;
            case 2:
                f->ftw = 0;
                for (unsigned r = 0; r < 8; r++)
                    if (((x >> (2 * r)) & 3) != 3)
                        f->ftw |= (u8)(1u << r);
                break;
            case 3: f->fcs = (u16)x; break;
            case 4: f->fip = x; break;
            case 5: f->fds = (u16)x; break;
            case 6: f->fdp = x; break;
            case 7: f->fop = (u16)(x & 0x7ff); break;
            }
            return 4;
        }
        v = vals[k];
        size = 4;
    } else if (n < ngpr + 24 + nxmm) {
        u8 *x = f->xmm[n - ngpr - 24];
        if (write)
            memcpy(x, p, 16);
        else
            memcpy(p, x, 16);
        return 16;
    } else if (n == ngpr + 24 + nxmm) {
        if (write) {
            f->mxcsr = (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
            return 4;
        }
        v = f->mxcsr;
        size = 4;
    } else {
        /* the system registers: fs_base, gs_base (64-bit only), then the rest */
        unsigned k = n - (ngpr + 25 + nxmm);
        if (!i386) {
            if (k == 0) {
                target = &c->seg[SEG_FS].base;
                size = 8;
            } else if (k == 1) {
                target = &c->seg[SEG_GS].base;
                size = 8;
            }
            k -= 2;
        }
        if (!target) {
            u64 *sys[] = { &c->msr_kernel_gs_base, &c->cr0, &c->cr2, &c->cr3, &c->cr4, &c->cr8, &c->efer };
            if (k >= sizeof(sys) / sizeof(sys[0]))
                return 0;
            if (write)
                return 8; /* control registers are not written behind the guest's back */
            target = sys[k];
            size = 8;
        }
    }
    if (target) {
        if (write) {
            u64 x = 0;
            for (unsigned i = 0; i < size; i++)
                x |= (u64)p[i] << (8 * i);
            if (target == &c->rflags)
                x = (c->rflags & ~0xffffffffull) | (x & 0x3f7fd7) | FL_FIXED1;
            *target = x;
            return size;
        }
        v = *target;
    }
    for (unsigned i = 0; i < size; i++)
        p[i] = (u8)(v >> (8 * i));
    return size;
}

static unsigned reg_count(void)
{
    return use_i386() ? 8 + 25 + 8 + 7 : 16 + 25 + 16 + 2 + 7;
}

/* ---- the target description ---- */
static char *target_xml(void)
{
    bool i386 = use_i386();
    char *x = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&x, &len);
    if (!f)
        return NULL;
    static const char *const n64[] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                                       "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15" };
    static const char *const n32[] = { "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi" };
    static const char *const sn[] = { "cs", "ss", "ds", "es", "fs", "gs" };
    static const char *const fn[] = { "fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop" };
    unsigned ngpr = i386 ? 8 : 16, bits = i386 ? 32 : 64, nxmm = i386 ? 8 : 16, r = 0;
    fprintf(f, "<?xml version=\"1.0\"?><!DOCTYPE target SYSTEM \"gdb-target.dtd\"><target>"
               "<architecture>%s</architecture><feature name=\"org.gnu.gdb.i386.core\">",
            i386 ? "i386" : "i386:x86-64");
    for (unsigned i = 0; i < ngpr; i++) {
        bool ptr = (i386 && (i == 4 || i == 5)) || (!i386 && (i == 6 || i == 7));
        fprintf(f, "<reg name=\"%s\" bitsize=\"%u\" type=\"%s\" regnum=\"%u\"/>", i386 ? n32[i] : n64[i],
                bits, ptr ? "data_ptr" : (i386 ? "int32" : "int64"), r++);
    }
    fprintf(f, "<reg name=\"%s\" bitsize=\"%u\" type=\"code_ptr\" regnum=\"%u\"/>", i386 ? "eip" : "rip", bits, r++);
    fprintf(f, "<reg name=\"eflags\" bitsize=\"32\" type=\"int32\" regnum=\"%u\"/>", r++);
    for (unsigned i = 0; i < 6; i++)
        fprintf(f, "<reg name=\"%s\" bitsize=\"32\" type=\"int32\" regnum=\"%u\"/>", sn[i], r++);
    for (unsigned i = 0; i < 8; i++)
        fprintf(f, "<reg name=\"st%u\" bitsize=\"80\" type=\"i387_ext\" regnum=\"%u\"/>", i, r++);
    for (unsigned i = 0; i < 8; i++)
        fprintf(f, "<reg name=\"%s\" bitsize=\"32\" type=\"int\" group=\"float\" regnum=\"%u\"/>", fn[i], r++);
    fprintf(f, "</feature><feature name=\"org.gnu.gdb.i386.sse\">"
               "<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>"
               "<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>"
               "<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>"
               "<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>"
               "<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>"
               "<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>"
               "<union id=\"vec128\"><field name=\"v4_float\" type=\"v4f\"/><field name=\"v2_double\" type=\"v2d\"/>"
               "<field name=\"v16_int8\" type=\"v16i8\"/><field name=\"v8_int16\" type=\"v8i16\"/>"
               "<field name=\"v4_int32\" type=\"v4i32\"/><field name=\"v2_int64\" type=\"v2i64\"/>"
               "<field name=\"uint128\" type=\"uint128\"/></union>");
    for (unsigned i = 0; i < nxmm; i++)
        fprintf(f, "<reg name=\"xmm%u\" bitsize=\"128\" type=\"vec128\" regnum=\"%u\"/>", i, r++);
    fprintf(f, "<reg name=\"mxcsr\" bitsize=\"32\" type=\"int\" group=\"vector\" regnum=\"%u\"/></feature>", r++);
    if (!i386) {
        fprintf(f, "<feature name=\"org.gnu.gdb.i386.segments\">"
                   "<reg name=\"fs_base\" bitsize=\"64\" type=\"int\" regnum=\"%u\"/>", r++);
        fprintf(f, "<reg name=\"gs_base\" bitsize=\"64\" type=\"int\" regnum=\"%u\"/></feature>", r++);
    }
    static const char *const sys[] = { "k_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer" };
    fprintf(f, "<feature name=\"org.nestor.system\">");
    for (unsigned i = 0; i < 7; i++)
        fprintf(f, "<reg name=\"%s\" bitsize=\"64\" type=\"int\" group=\"system\" regnum=\"%u\"/>", sys[i], r++);
    fprintf(f, "</feature></target>");
    fclose(f);
    return x;
}

/* ---- run control ---- */
static void arm_all(void)
{
    for (int i = 0; i < g.m->ncpus; i++)
        cpu_set_host_debug(g.m->cpu[i], &g.dbg);
}

static void stop_reply(int sig)
{
    struct machine *m = g.m;
    int t = m->debug_vcpu >= 0 && m->debug_vcpu < m->ncpus ? m->debug_vcpu : 0;
    struct cpu *c = m->cpu[t];
    if (sig == SIGTRAP && c->host_stop == HOST_STOP_WATCH) {
        static const char *const kinds[] = { "", "watch", "rwatch", "awatch" };
        put_packetf("T%02xthread:%x;%s:%llx;", sig, t + 1, kinds[c->host_stop_watch_kind & 3],
                    (unsigned long long)c->host_stop_addr);
    } else if (sig == SIGTRAP && c->host_stop == HOST_STOP_BREAKPOINT) {
        put_packetf("T%02xthread:%x;hwbreak:;", sig, t + 1);
    } else {
        put_packetf("T%02xthread:%x;", sig, t + 1);
    }
}

/* Before the machine runs again: the vCPUs that stopped at a breakpoint run through it. */
static void clear_stops(void)
{
    for (int i = 0; i < g.m->ncpus; i++) {
        struct cpu *c = g.m->cpu[i];
        if (c->host_stop == HOST_STOP_BREAKPOINT) {
            c->host_resume_rip = c->host_stop_addr;
            c->host_resume_armed = true;
        }
        c->host_stop = HOST_STOP_NONE;
    }
}

static void do_continue(void)
{
    clear_stops();
    g.running = true;
    machine_resume(g.m);
}

/* One instruction of vCPU t, the others stay; then the stop reply. */
static void do_step(int t)
{
    struct machine *m = g.m;
    if (t < 0 || t >= m->ncpus)
        t = m->debug_vcpu >= 0 && m->debug_vcpu < m->ncpus ? m->debug_vcpu : 0;
    struct cpu *c = m->cpu[t];
    clear_stops();
    /* a step runs through a breakpoint at the current instruction */
    c->host_resume_rip = c->mode == MODE_LONG64 ? c->rip : (c->seg[SEG_CS].base + c->rip) & 0xffffffffull;
    c->host_resume_armed = true;
    m->running = t;
    cpu_run(c, 1);
    m->running = -1;
    c->host_resume_armed = false;
    m->debug_vcpu = t;
    if (c->host_stop != HOST_STOP_WATCH)
        c->host_stop = HOST_STOP_NONE;
    stop_reply(SIGTRAP);
}

/* ---- breakpoints ---- */
static bool bp_change(const char *args, bool insert, char type)
{
    u64 addr, kind;
    const char *p;
    if (!parse_hex(args, &addr, &p) || *p != ',' || !parse_hex(p + 1, &kind, &p))
        return false;
    struct cpu_host_debug *d = &g.dbg;
    if (type == '0' || type == '1') {
        for (int k = 0; k < d->nbp; k++)
            if (d->bp[k] == addr) {
                if (!insert)
                    d->bp[k] = d->bp[--d->nbp];
                arm_all();
                return true;
            }
        if (!insert || d->nbp == CPU_HOST_BREAKPOINTS)
            return !insert;
        d->bp[d->nbp++] = addr;
    } else {
        u8 wk = type == '2' ? HOST_WATCH_WRITE : type == '3' ? HOST_WATCH_READ : HOST_WATCH_ACCESS;
        if (kind == 0 || kind > 4096)
            return false;
        for (int k = 0; k < d->nwp; k++)
            if (d->wp[k].addr == addr && d->wp[k].len == kind && d->wp[k].kind == wk) {
                if (!insert)
                    d->wp[k] = d->wp[--d->nwp];
                arm_all();
                return true;
            }
        if (!insert || d->nwp == CPU_HOST_BREAKPOINTS)
            return !insert;
        d->wp[d->nwp].addr = addr;
        d->wp[d->nwp].len = (u32)kind;
        d->wp[d->nwp++].kind = wk;
    }
    arm_all();
    return true;
}

/* ---- packets ---- */
static void handle_qxfer(const char *args)
{
    /* features:read:target.xml:OFFSET,LENGTH */
    const char *annex = "features:read:target.xml:";
    if (strncmp(args, annex, strlen(annex))) {
        put_packet("");
        return;
    }
    u64 off, len;
    const char *p;
    if (!parse_hex(args + strlen(annex), &off, &p) || *p != ',' || !parse_hex(p + 1, &len, &p)) {
        put_packet("E01");
        return;
    }
    char *xml = target_xml();
    if (!xml) {
        put_packet("E01");
        return;
    }
    size_t n = strlen(xml);
    if (len > PACKET_MAX - 16)
        len = PACKET_MAX - 16;
    char *out = malloc(len + 2);
    if (off >= n) {
        put_packet("l");
    } else if (out) {
        size_t k = n - off < len ? n - off : (size_t)len;
        out[0] = off + k >= n ? 'l' : 'm';
        memcpy(out + 1, xml + off, k);
        out[1 + k] = 0;
        put_packet(out);
    }
    free(out);
    free(xml);
}

static void handle_vcont(const char *p)
{
    /* vCont;ACTION[:THREAD]... : a step for some thread wins, else continue */
    int step_thread = -2;
    while (*p == ';') {
        char a = p[1];
        p += 2;
        u64 t = 0;
        bool has_t = false;
        if (*p == ':') {
            const char *e;
            if (p[1] == '-' && p[2] == '1') {
                e = p + 3;
            } else if (!parse_hex(p + 1, &t, &e)) {
                put_packet("E01");
                return;
            } else {
                has_t = true;
            }
            p = e;
        }
        if ((a == 's' || a == 'S') && step_thread == -2)
            step_thread = has_t ? (int)t - 1 : g.cthread;
        while (*p && *p != ';')
            p++;
    }
    if (step_thread != -2)
        do_step(step_thread);
    else
        do_continue();
}

static void handle_packet(char *pkt)
{
    struct machine *m = g.m;
    char cmd = pkt[0];
    char *args = pkt + 1;
    switch (cmd) {
    case '?':
        stop_reply(m->paused && g.running ? SIGTRAP : SIGTRAP);
        return;
    case 'g': {
        struct cpu *c = thread_cpu(g.gthread);
        unsigned n = reg_count();
        char *out = malloc(n * 32 + 1), *o = out;
        if (!out)
            return put_packet("E01");
        for (unsigned r = 0; r < n; r++) {
            u8 v[16];
            unsigned sz = reg_access(c, r, v, false);
            hex_bytes(o, v, sz);
            o += 2 * sz;
        }
        put_packet(out);
        free(out);
        return;
    }
    case 'G': {
        struct cpu *c = thread_cpu(g.gthread);
        size_t len = strlen(args), off = 0;
        for (unsigned r = 0; r < reg_count(); r++) {
            u8 v[16];
            unsigned sz = reg_access(c, r, v, false);
            if (off + 2 * sz > len)
                break;
            if (!unhex(args + off, v, sz))
                return put_packet("E01");
            reg_access(c, r, v, true);
            off += 2 * sz;
        }
        cpu_update_mode(c);
        return put_packet("OK");
    }
    case 'p': case 'P': {
        struct cpu *c = thread_cpu(g.gthread);
        u64 r;
        const char *e;
        if (!parse_hex(args, &r, &e) || r >= reg_count())
            return put_packet("E01");
        u8 v[16];
        unsigned sz = reg_access(c, (unsigned)r, v, false);
        if (cmd == 'p') {
            char out[40];
            hex_bytes(out, v, sz);
            return put_packet(out);
        }
        if (*e != '=' || strlen(e + 1) < 2 * sz || !unhex(e + 1, v, sz))
            return put_packet("E01");
        reg_access(c, (unsigned)r, v, true);
        cpu_update_mode(c);
        return put_packet("OK");
    }
    case 'm': case 'M': {
        u64 addr, len;
        const char *e;
        if (!parse_hex(args, &addr, &e) || *e != ',' || !parse_hex(e + 1, &len, &e) || len > PACKET_MAX / 2 - 8)
            return put_packet("E01");
        struct cpu *c = thread_cpu(g.gthread);
        u8 *buf = malloc(len ? len : 1);
        if (!buf)
            return put_packet("E01");
        if (cmd == 'm') {
            char *out = malloc(2 * len + 1);
            if (out && cpu_debug_access(c, addr, buf, len, false) == 0) {
                hex_bytes(out, buf, len);
                put_packet(out);
            } else {
                put_packet("E14");
            }
            free(out);
        } else {
            if (*e != ':' || strlen(e + 1) < 2 * len || !unhex(e + 1, buf, len))
                put_packet("E01");
            else
                put_packet(cpu_debug_access(c, addr, buf, len, true) == 0 ? "OK" : "E14");
        }
        free(buf);
        return;
    }
    case 'X': {
        /* binary data arrives unescaped already (the reader undid '}') */
        u64 addr, len;
        const char *e;
        if (!parse_hex(args, &addr, &e) || *e != ',' || !parse_hex(e + 1, &len, &e) || *e != ':')
            return put_packet("E01");
        if (len > (u64)(g.in_len - (size_t)((const u8 *)e + 1 - g.in)))
            return put_packet("E01");
        if (!len)
            return put_packet("OK");
        return put_packet(cpu_debug_access(thread_cpu(g.gthread), addr, (void *)(e + 1), len, true) == 0 ? "OK" : "E14");
    }
    case 'c':
        do_continue();
        return;
    case 's':
        do_step(g.cthread);
        return;
    case 'H': {
        u64 t = 0;
        const char *e;
        int v;
        if (args[1] == '-' && args[2] == '1')
            v = -1;
        else if (parse_hex(args + 1, &t, &e))
            v = t == 0 ? -1 : (int)t - 1;
        else
            return put_packet("E01");
        if (v >= m->ncpus)
            return put_packet("E01");
        if (args[0] == 'g')
            g.gthread = v;
        else
            g.cthread = v;
        return put_packet("OK");
    }
    case 'T': {
        u64 t;
        const char *e;
        return put_packet(parse_hex(args, &t, &e) && t >= 1 && t <= (u64)m->ncpus ? "OK" : "E01");
    }
    case 'Z': case 'z':
        if (args[0] < '0' || args[0] > '4' || args[1] != ',')
            return put_packet("");
        return put_packet(bp_change(args + 2, cmd == 'Z', args[0]) ? "OK" : "E01");
    case 'D':
        g.dbg.nbp = g.dbg.nwp = 0;
        arm_all();
        put_packet("OK");
        clear_stops();
        g.running = false;
        machine_resume(m);
        if (!g.feeding) {
            close(g.fd);
            g.fd = -1;
        }
        return;
    case 'k':
        machine_request_stop(m, NESTOR_EXIT_OK);
        m->paused = false;
        return;
    case 'q':
        if (!strncmp(args, "Supported", 9))
            return put_packetf("PacketSize=%x;qXfer:features:read+;vContSupported+;hwbreak+;QStartNoAckMode+", PACKET_MAX);
        if (!strncmp(args, "Xfer:", 5))
            return handle_qxfer(args + 5);
        if (!strcmp(args, "fThreadInfo")) {
            char out[MACHINE_MAX_CPUS * 4 + 2] = "m";
            for (int i = 0; i < m->ncpus; i++)
                snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%x", i ? "," : "", i + 1);
            return put_packet(out);
        }
        if (!strcmp(args, "sThreadInfo"))
            return put_packet("l");
        if (!strcmp(args, "C"))
            return put_packetf("QC%x", (m->debug_vcpu >= 0 ? m->debug_vcpu : 0) + 1);
        if (!strncmp(args, "Attached", 8))
            return put_packet("1");
        if (!strncmp(args, "ThreadExtraInfo,", 16)) {
            u64 t;
            const char *e;
            char text[64], out[130];
            if (!parse_hex(args + 16, &t, &e) || t < 1 || t > (u64)m->ncpus)
                return put_packet("E01");
            struct cpu *c = m->cpu[t - 1];
            snprintf(text, sizeof(text), "vCPU %llu%s", (unsigned long long)t - 1,
                     c->state == CPU_HALTED ? " (halted)" : c->state == CPU_WAIT_FOR_SIPI ? " (waiting for SIPI)" : "");
            hex_bytes(out, (const u8 *)text, strlen(text));
            return put_packet(out);
        }
        return put_packet("");
    case 'Q':
        if (!strcmp(args, "StartNoAckMode")) {
            put_packet("OK");
            g.no_ack = true;
            return;
        }
        return put_packet("");
    case 'v':
        if (!strcmp(args, "Cont?"))
            return put_packet("vCont;c;C;s;S");
        if (!strncmp(args, "Cont;", 5) || !strcmp(args, "Cont"))
            return handle_vcont(args + 4);
        if (!strncmp(args, "MustReplyEmpty", 14))
            return put_packet("");
        return put_packet("");
    default:
        put_packet("");
    }
}

/* Bytes from the debugger: packets with their checksums, acks, Ctrl-C. */
static void input(const u8 *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        u8 ch = p[i];
        if (!g.in_packet) {
            if (ch == '$') {
                g.in_packet = true;
                g.in_len = 0;
                g.csum_sum = 0;
                g.in_escape = false;
                g.in_csum_digits = -1;
            } else if (ch == 0x03 && g.m && !g.m->paused) {
                g.m->debug_vcpu = 0;
                machine_pause(g.m);
                g.running = false;
                stop_reply(SIGINT);
            }
            continue; /* '+', '-' and noise */
        }
        if (g.in_csum_digits >= 0) {
            g.csum[g.in_csum_digits++] = (char)ch;
            if (g.in_csum_digits < 2)
                continue;
            g.in_packet = false;
            int a = hexval(g.csum[0]), b = hexval(g.csum[1]);
            bool ok = a >= 0 && b >= 0 && (u8)(a << 4 | b) == g.csum_sum;
            if (!g.no_ack)
                send_raw(ok ? "+" : "-", 1);
            if (ok && g.in_len <= PACKET_MAX) {
                g.in[g.in_len] = 0;
                handle_packet((char *)g.in);
            } else if (ok) {
                put_packet("E01");
            }
            continue;
        }
        if (ch == '#') {
            g.in_csum_digits = 0;
            continue;
        }
        g.csum_sum += ch;
        if (g.in_escape) {
            ch ^= 0x20;
            g.in_escape = false;
        } else if (ch == '}') {
            g.in_escape = true;
            continue;
        }
        if (g.in_len < PACKET_MAX)
            g.in[g.in_len] = ch;
        g.in_len++;
    }
}

/* ---- the machine's control client ---- */
static void gdb_poll(void *opaque, int timeout_ms)
{
    (void)opaque;
    struct pollfd p[2];
    int n = 0;
    if (g.lfd >= 0)
        p[n++] = (struct pollfd){ g.lfd, POLLIN, 0 };
    if (g.fd >= 0)
        p[n++] = (struct pollfd){ g.fd, POLLIN, 0 };
    if (!n || poll(p, (nfds_t)n, timeout_ms) <= 0)
        return;
    for (int i = 0; i < n; i++) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        if (p[i].fd == g.lfd) {
            int fd = accept4(g.lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            if (g.fd >= 0) {
                close(fd); /* one debugger at a time */
                continue;
            }
            g.fd = fd;
            g.no_ack = false;
            g.in_packet = false;
            g.gthread = g.cthread = -1;
            /* a debugger that attaches finds the machine stopped */
            if (!g.m->paused) {
                g.m->debug_vcpu = 0;
                machine_pause(g.m);
            }
            g.running = false;
        } else {
            u8 buf[4096];
            ssize_t r = recv(g.fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                /* the debugger went away: its breakpoints go, the guest runs on */
                close(g.fd);
                g.fd = -1;
                g.dbg.nbp = g.dbg.nwp = 0;
                arm_all();
                clear_stops();
                machine_resume(g.m);
                continue;
            }
            if (r > 0)
                input(buf, (size_t)r);
        }
    }
}

static void gdb_event(void *opaque, enum machine_event ev)
{
    (void)opaque;
    if (ev == MACHINE_EV_DEBUG && g.fd >= 0 && g.running) {
        g.running = false;
        stop_reply(SIGTRAP);
    }
}

static const struct machine_control_ops gdb_ops = { gdb_poll, gdb_event };

void gdb_attach(struct machine *m, bool start_stopped)
{
    g.m = m;
    m->debug_vcpu = 0;
    machine_set_control(m, &gdb_ops, NULL);
    arm_all();
    if (start_stopped)
        m->paused = true; /* -S: until the debugger continues */
}

int gdb_listen(const char *spec, char *err, size_t errlen)
{
    if (strncmp(spec, "tcp:", 4) || !strchr(spec + 4, ':'))
        return nestor_err(err, errlen, "-gdb %s: expected tcp::PORT or tcp:HOST:PORT", spec);
    int fd = sock_listen(spec, true, err, errlen);
    if (fd < 0)
        return -1;
    g.lfd = fd;
    return 0;
}

void gdb_shutdown(void)
{
    if (g.fd >= 0)
        close(g.fd);
    if (g.lfd >= 0)
        close(g.lfd);
    g.fd = g.lfd = -1;
}

void gdb_feed(int fd, const u8 *p, size_t n)
{
    int saved = g.fd;
    g.fd = fd;
    g.feeding = true;
    input(p, n);
    g.feeding = false;
    g.fd = saved;
}
