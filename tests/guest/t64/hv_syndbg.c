/* Hyper-V synthetic debugger (-device hv-syndbg, QEMU's), against the UDP peer of
 * tests/hyperv/syndbg.sh, which passes "mode=msr|hcall port=N" on the command line. Each
 * round the guest sends a payload the peer checks, and the peer answers one the guest
 * checks; both compute them with the same formula (see syndbg.sh).
 *  - MSR mode (SYNDBG_OPTIONS 0): the buffer MSRs read back; a receive with nothing
 *    waiting: STATUS 0; send = SEND_BUFFER + CONTROL bit 0 with the size in 31:16 ->
 *    STATUS bit 0; the pending page's byte becomes 1 when the answer waits; receive =
 *    CONTROL bit 1 -> STATUS bit 2 with the size in 31:16, the answer in RECV_BUFFER, the
 *    pending byte back to 0. The debug hypercalls are OPERATION_DENIED.
 *  - Hypercall mode (use_hcalls=on: SYNDBG_OPTIONS bit 2): HvResetDebugSession names
 *    both ends (127.0.0.1, host_port); HvRetrieveDebugData with nothing: NO_DATA;
 *    HvPostDebugData of an Ethernet/IPv4/UDP frame sends its UDP payload only (other
 *    frames are dropped); the answer comes back from HvRetrieveDebugData as a frame from
 *    127.0.0.1:host_port to the posted frame's source, with valid checksums; a fast call
 *    or a count beyond the page: INVALID_PARAMETER.
 * Without the peer (run.sh) there is nothing to talk to: only run by syndbg.sh.
 * guest: default=no */
#include "rt.h"
#include "hyperv.h"

#define ROUNDS 3
static const u32 send_sizes[2][ROUNDS] = { { 1, 333, 4000 }, { 1, 333, 4000 } };
static const u32 reply_sizes[2][ROUNDS] = { { 7, 1000, 4096 }, { 7, 1000, 4000 } };
#define GUEST_IP 0x0a00020fu   /* 10.0.2.15: the source address of the guest's frames */
#define GUEST_UDP_PORT 50001

/* the payloads, as syndbg.sh's peer computes them */
static u8 send_byte(int mode, int round, u32 j) { return (u8)(j * 31 + round * 7 + mode * 3 + 1); }
static u8 reply_byte(int mode, int round, u32 j) { return (u8)(j * 13 + round * 5 + mode * 11 + 2); }

static u64 tsc_deadline(u64 ms) { return rdtsc() + ms * 1000 * tsc_per_us(); }
static bool tsc_before(u64 deadline) { return (s64)(rdtsc() - deadline) < 0; }

static bool payload_matches(const u8 *p, int mode, int round, u32 n)
{
    for (u32 j = 0; j < n; j++)
        if (p[j] != reply_byte(mode, round, j))
            return false;
    return true;
}

static u16 get16be(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 get32be(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static void put16be(u8 *p, u32 v) { p[0] = (u8)(v >> 8), p[1] = (u8)v; }
static void put32be(u8 *p, u32 v) { put16be(p, v >> 16), put16be(p + 2, v); }

/* the one's-complement sum (RFC 1071), not yet complemented */
static u32 csum_add(u32 sum, const u8 *p, u32 len)
{
    for (u32 i = 0; i + 1 < len; i += 2)
        sum += get16be(p + i);
    if (len & 1)
        sum += (u32)p[len - 1] << 8;
    return sum;
}
static u16 csum_fold(u32 sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (u16)sum;
}

/* ---- MSR mode ---- */
static void test_msr_mode(void)
{
    const int mode = 0;
    u8 *sendp = page_alloc(), *recvp = page_alloc();
    volatile u8 *pending = page_alloc();
    wrmsr(HV_X64_MSR_SYNDBG_SEND_BUFFER, (u64)sendp);
    wrmsr(HV_X64_MSR_SYNDBG_RECV_BUFFER, (u64)recvp);
    wrmsr(HV_X64_MSR_SYNDBG_PENDING_BUFFER, (u64)pending);
    TEST_EQ(rdmsr(HV_X64_MSR_SYNDBG_SEND_BUFFER), (u64)sendp, "SEND_BUFFER reads back");
    TEST_EQ(rdmsr(HV_X64_MSR_SYNDBG_RECV_BUFFER), (u64)recvp, "RECV_BUFFER reads back");
    TEST_EQ(rdmsr(HV_X64_MSR_SYNDBG_PENDING_BUFFER), (u64)pending, "PENDING_BUFFER reads back");
    TEST_EQ(*pending, 0, "nothing pending at first");
    wrmsr(HV_X64_MSR_SYNDBG_CONTROL, 2);
    TEST_EQ(rdmsr(HV_X64_MSR_SYNDBG_STATUS), 0, "receive with nothing waiting: STATUS 0");

    /* the hypercalls are the other mode's */
    TEST_EQ(hv_hypercall(HVCALL_RESET_DEBUG_SESSION, (u64)recvp, (u64)recvp + 2048),
            HV_STATUS_OPERATION_DENIED, "MSR mode: HvResetDebugSession OPERATION_DENIED");
    TEST_EQ(hv_hypercall(HVCALL_RETRIEVE_DEBUG_DATA, (u64)recvp, (u64)recvp + 2048),
            HV_STATUS_OPERATION_DENIED, "MSR mode: HvRetrieveDebugData OPERATION_DENIED");

    for (int r = 0; r < ROUNDS; r++) {
        u32 n = send_sizes[mode][r], want = reply_sizes[mode][r];
        for (u32 j = 0; j < n; j++)
            sendp[j] = send_byte(mode, r, j);
        wrmsr(HV_X64_MSR_SYNDBG_CONTROL, 1 | (u64)n << 16);
        TEST_EQ(rdmsr(HV_X64_MSR_SYNDBG_STATUS), 1, "send: STATUS SEND_SUCCESS");
        u64 end = tsc_deadline(20000);
        while (*pending != 1 && tsc_before(end))
            asm volatile("sti; pause; cli" ::: "memory");
        TEST_EQ(*pending, 1, "the answer waits: pending byte 1");
        memset(recvp, 0, 4096);
        wrmsr(HV_X64_MSR_SYNDBG_CONTROL, 2);
        u64 st = rdmsr(HV_X64_MSR_SYNDBG_STATUS);
        TEST_EQ(st & 0xffff, 4, "receive: STATUS RECV_SUCCESS");
        TEST_EQ(st >> 16, want, "receive: the size in STATUS 31:16");
        TEST_ASSERT(payload_matches(recvp, mode, r, want), "round %d: the peer's answer in RECV_BUFFER", r);
        TEST_EQ(*pending, 0, "pending byte back to 0");
    }
    wrmsr(HV_X64_MSR_SYNDBG_CONTROL, 2);
    TEST_EQ(rdmsr(HV_X64_MSR_SYNDBG_STATUS), 0, "nothing more to receive");
}

/* ---- hypercall mode ---- */
static u32 build_frame(u8 *f, u32 dport, u16 ethertype, u8 proto, const u8 *payload, u32 n)
{
    memset(f, 0, 42);
    static const u8 dst[6] = { 0x00, 0x15, 0x5d, 0x00, 0x00, 0x01 }, src[6] = { 0x00, 0x15, 0x5d, 0x00, 0x00, 0x02 };
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    put16be(f + 12, ethertype);
    u8 *ip = f + 14, *udp = ip + 20;
    ip[0] = 0x45;
    put16be(ip + 2, 28 + n);
    ip[8] = 64;
    ip[9] = proto;
    put32be(ip + 12, GUEST_IP);
    put32be(ip + 16, 0x7f000001);
    put16be(ip + 10, (u16)~csum_fold(csum_add(0, ip, 20)));
    put16be(udp, GUEST_UDP_PORT);
    put16be(udp + 2, dport);
    put16be(udp + 4, 8 + n);
    memcpy(udp + 8, payload, n);
    return 42 + n;
}

static u64 post(u8 *in, u8 *out, const u8 *frame, u32 len)
{
    *(u32 *)in = len;
    *(u32 *)(in + 4) = 0;
    memcpy(in + 8, frame, len);
    *(u32 *)out = 0xdeadbeef;
    return hv_hypercall(HVCALL_POST_DEBUG_DATA, (u64)in, (u64)out);
}

static u64 retrieve(u8 *in, u8 *out, u32 count)
{
    memset(in, 0, 16);
    *(u32 *)in = count;
    *(u32 *)out = 0xdeadbeef;
    *(u32 *)(out + 4) = 0xdeadbeef;
    return hv_hypercall(HVCALL_RETRIEVE_DEBUG_DATA, (u64)in, (u64)out);
}

static void test_hcall_mode(u32 port)
{
    const int mode = 1;
    u8 *in = page_alloc(), *out = page_alloc(), *frame = page_alloc(), *payload = page_alloc();

    /* HvResetDebugSession: the two ends */
    memset(out, 0xee, 64);
    *(u32 *)in = 0;
    TEST_EQ(hv_hypercall(HVCALL_RESET_DEBUG_SESSION, (u64)in, (u64)out), 0, "HvResetDebugSession");
    TEST_EQ(*(u32 *)out, 0x7f000001, "host IP 127.0.0.1");
    TEST_EQ(*(u32 *)(out + 4), 0x7f000001, "target IP");
    TEST_EQ(*(u16 *)(out + 8), port, "host port");
    TEST_EQ(*(u16 *)(out + 10), port, "target port");
    bool macs_zero = true;
    for (int i = 12; i < 24; i++)
        macs_zero &= out[i] == 0;
    TEST_ASSERT(macs_zero, "MAC addresses 0");

    /* nothing yet */
    TEST_EQ(retrieve(in, out, 4088), HV_STATUS_NO_DATA, "HvRetrieveDebugData before any data: NO_DATA");
    TEST_EQ(*(u32 *)out, 0, "NO_DATA: retrieved 0");
    TEST_EQ(*(u32 *)(out + 4), 4088, "NO_DATA: remaining = count");

    /* refused calls */
    TEST_EQ(hv_hypercall(HVCALL_POST_DEBUG_DATA | HV_HYPERCALL_FAST, 0, 0), HV_STATUS_INVALID_PARAMETER,
            "fast HvPostDebugData: INVALID_PARAMETER");
    *(u32 *)in = 4089;
    TEST_EQ(hv_hypercall(HVCALL_POST_DEBUG_DATA, (u64)in, (u64)out), HV_STATUS_INVALID_PARAMETER,
            "HvPostDebugData count 4089: INVALID_PARAMETER");

    for (int r = 0; r < ROUNDS; r++) {
        u32 n = send_sizes[mode][r], want = reply_sizes[mode][r];
        if (r == ROUNDS - 1) {
            /* frames that are not IPv4/UDP reach nobody: the peer would see them first */
            u32 len = build_frame(frame, port, 0x0806, 17, payload, 8);
            TEST_EQ(post(in, out, frame, len), 0, "an ARP frame: SUCCESS, dropped");
            len = build_frame(frame, port, 0x0800, 6, payload, 8);
            TEST_EQ(post(in, out, frame, len), 0, "a TCP frame: SUCCESS, dropped");
            TEST_EQ(post(in, out, frame, 10), 0, "a runt frame: SUCCESS, dropped");
        }
        for (u32 j = 0; j < n; j++)
            payload[j] = send_byte(mode, r, j);
        u32 len = build_frame(frame, port, 0x0800, 17, payload, n);
        TEST_EQ(post(in, out, frame, len), 0, "HvPostDebugData of a UDP frame");
        TEST_EQ(*(u32 *)out, 0, "pending_count 0");

        u64 st = HV_STATUS_NO_DATA;
        for (u64 end = tsc_deadline(20000); st == HV_STATUS_NO_DATA && tsc_before(end);) {
            memset(out, 0, 8 + 42 + want + 16);
            st = retrieve(in, out, 4088);
            if (st == HV_STATUS_NO_DATA)
                udelay(200);
        }
        TEST_EQ(st, 0, "HvRetrieveDebugData: the answer");
        u32 got = *(u32 *)out, remaining = *(u32 *)(out + 4);
        TEST_EQ(got, 42 + want, "retrieved count: headers + payload");
        TEST_EQ(remaining, 4088 - got, "remaining count");
        const u8 *f = out + 8, *ip = f + 14, *udp = ip + 20;
        TEST_EQ(get16be(f + 12), 0x0800, "Ethernet type IPv4");
        TEST_EQ(ip[0], 0x45, "IPv4, 20-byte header");
        TEST_EQ(ip[9], 17, "protocol UDP");
        TEST_EQ(get16be(ip + 2), 28 + want, "IPv4 total length");
        TEST_EQ(get32be(ip + 12), 0x7f000001, "from 127.0.0.1");
        TEST_EQ(get32be(ip + 16), GUEST_IP, "to the posted frame's source");
        TEST_EQ(csum_fold(csum_add(0, ip, 20)), 0xffff, "IPv4 header checksum valid");
        TEST_EQ(get16be(udp), port, "UDP source port = host_port");
        TEST_EQ(get16be(udp + 2), port, "UDP destination port = host_port");
        TEST_EQ(get16be(udp + 4), 8 + want, "UDP length");
        if (get16be(udp + 6)) {
            u8 pseudo[12];
            memcpy(pseudo, ip + 12, 8);
            pseudo[8] = 0, pseudo[9] = 17;
            put16be(pseudo + 10, 8 + want);
            TEST_EQ(csum_fold(csum_add(csum_add(0, pseudo, 12), udp, 8 + want)), 0xffff,
                    "UDP checksum valid");
        }
        TEST_ASSERT(payload_matches(udp + 8, mode, r, want), "round %d: the peer's answer as the payload", r);
    }
    TEST_EQ(retrieve(in, out, 4088), HV_STATUS_NO_DATA, "nothing more: NO_DATA");
}

void test_main(void)
{
    char mode[16], portbuf[16];
    if (!rt_cmdline_value("mode", mode, sizeof(mode)) || !rt_cmdline_value("port", portbuf, sizeof(portbuf))) {
        test_skip("run by tests/hyperv/syndbg.sh (mode=, port=)");
        return;
    }
    u32 port = 0;
    for (const char *p = portbuf; *p >= '0' && *p <= '9'; p++)
        port = port * 10 + (u32)(*p - '0');
    bool hcall = !strcmp(mode, "hcall");
    if (!hv_present())
        panic("no Hyper-V CPUID leaves");
    TEST_ASSERT(cpuid(0x40000003).d & BIT(11), "CPUID 40000003h EDX: debug MSRs available");
    TEST_EQ(cpuid(0x40000000).a, 0x40000082, "max leaf 40000082h");
    TEST_ASSERT(cpuid(0x40000082).a & BIT(1), "CPUID 40000082h: kernel debugging allowed");
    TEST_EQ(rdmsr(HV_X64_MSR_SYNDBG_OPTIONS), hcall ? BIT(2) : 0, "SYNDBG_OPTIONS: the mode");
    hv_hypercall_setup();
    TEST_EQ(hv_hypercall(HVCALL_POST_DEBUG_DATA | HV_HYPERCALL_FAST, 0, 0), HV_STATUS_INVALID_PARAMETER,
            "fast HvPostDebugData: INVALID_PARAMETER");
    if (hcall)
        test_hcall_mode(port);
    else
        test_msr_mode();
}
