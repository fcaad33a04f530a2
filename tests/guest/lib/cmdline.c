/* The kernel command line from the multiboot information: how the runner tells a test
 * which configuration it runs under (e.g. "cpu=max,-bmi1" for a run with -cpu). */
#include "rt.h"

#define MBI_FLAG_CMDLINE BIT(2)
#define MBI_CMDLINE_OFFSET 16

const char *rt_cmdline(void)
{
    if (mb_magic != 0x2badb002 || !mb_info)
        return "";
    const u32 *mbi = (const u32 *)(ulong)mb_info;
    if (!(mbi[0] & MBI_FLAG_CMDLINE) || !mbi[MBI_CMDLINE_OFFSET / 4])
        return "";
    return (const char *)(ulong)mbi[MBI_CMDLINE_OFFSET / 4];
}

bool rt_cmdline_value(const char *key, char *buf, size_t n)
{
    size_t klen = strlen(key);
    const char *p = rt_cmdline();
    while (*p) {
        while (*p == ' ')
            p++;
        const char *word = p;
        while (*p && *p != ' ')
            p++;
        if ((size_t)(p - word) > klen && strncmp(word, key, klen) == 0 && word[klen] == '=') {
            size_t len = (size_t)(p - word) - klen - 1;
            if (n == 0)
                return true;
            if (len >= n)
                len = n - 1;
            memcpy(buf, word + klen + 1, len);
            buf[len] = 0;
            return true;
        }
    }
    return false;
}
