/* hello: argv/argc/environment basics.
 * Prints a greeting built from argv[1..], argc, every argv element, and the
 * value of the environment variable AOTC_SAMPLE (or "(unset)").
 * Exit status: 0 when argc == 2, otherwise 3 (so both paths can be tested).
 * Note: argv[0] is printed as its basename only, so the output does not
 * depend on the directory the binary lives in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *a0 = argv[0] ? argv[0] : "";
    const char *slash = strrchr(a0, '/');
    const char *base = slash ? slash + 1 : a0;
    /* strip the flavour suffix (".riscv64", ".x86_64", ...) so that all
       flavours print the same thing */
    char name[64];
    snprintf(name, sizeof name, "%s", base);
    char *dot = strchr(name, '.');
    if (dot)
        *dot = '\0';

    printf("hello,");
    if (argc <= 1)
        printf(" world");
    for (int i = 1; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    printf("argc=%d\n", argc);
    printf("argv[0] basename=%s\n", name);
    for (int i = 1; i < argc; i++)
        printf("argv[%d]=%s (len %zu)\n", i, argv[i], strlen(argv[i]));
    const char *env = getenv("AOTC_SAMPLE");
    printf("AOTC_SAMPLE=%s\n", env ? env : "(unset)");
    const char *path = getenv("PATH");
    printf("PATH is %s\n", path ? "set" : "unset");
    int status = argc == 2 ? 0 : 3;
    printf("exit=%d\n", status);
    return status;
}
