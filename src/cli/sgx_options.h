/* The command line's SGX options, as QEMU spells them where it has them:
 *   -object memory-backend-epc,id=M,size=S[,prealloc=on|off]
 *   -M sgx-epc.N.memdev=M[,sgx-epc.N.node=0]   (also -machine, and a leading "pc"/"q35")
 * and nestor's own:
 *   -sgx-epc S[,S...]   EPC sections of these sizes (shorthand for the two above)
 *   -sgx-provision      enclaves may have the provisioning key (the host's /dev/sgx_provision)
 *   -sgx-key FILE       the keys' root secret: 32 bytes read from FILE, or made and written
 *                       there if FILE does not exist, so that sealed data survives restarts */
#ifndef NESTOR_CLI_SGX_OPTIONS_H
#define NESTOR_CLI_SGX_OPTIONS_H

#include "cpu/sgx/sgx.h"

struct sgx_cli {
    struct { char id[64]; u64 size; } backend[SGX_MAX_SECTIONS];
    int nbackend;
    char memdev[SGX_MAX_SECTIONS][64]; /* sgx-epc.N.memdev, "" where not given */
    u64 shorthand[SGX_MAX_SECTIONS];
    int nshorthand;
    bool provision;
    const char *key_file;
};

/* Each returns 0, or -1 with a message in err. */
int sgx_cli_object(struct sgx_cli *s, const char *spec, char *err, size_t errlen);
int sgx_cli_machine(struct sgx_cli *s, const char *spec, char *err, size_t errlen);
int sgx_cli_epc(struct sgx_cli *s, const char *spec, char *err, size_t errlen);
/* Resolves the sections and reads (or makes) the key file into out. */
int sgx_cli_finish(const struct sgx_cli *s, struct sgx_config *out, char *err, size_t errlen);

#endif
