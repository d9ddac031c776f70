/* abort: prints a line, flushes stdout, then calls abort().
 * The process is killed by SIGABRT (shell status 134). */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    printf("about to abort\n");
    fflush(stdout);
    abort();
}
