/* crash: prints a line, flushes stdout, then dereferences NULL.
 * The process is killed by SIGSEGV (shell status 139). */
#include <stdio.h>

int main(void)
{
    printf("about to crash\n");
    fflush(stdout);
    volatile int *p = (volatile int *)0;
    *p = 42;
    printf("not reached\n");
    return 0;
}
