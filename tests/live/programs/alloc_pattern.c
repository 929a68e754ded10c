/*
 * A program whose allocations are known, for the --pid deep dive tests.
 *
 * It waits for a line on stdin ("go"), then, ROUNDS times:
 *   - malloc + free 100 blocks of 24 bytes   (log2 bucket 16 -> 31)
 *   - malloc + free  10 blocks of 3000 bytes (bucket 2048 -> 4095)
 *   - malloc + free   1 block of 100000      (bucket 65536 -> 131071)
 *   - leak_here(): malloc 4096 bytes and keep it (bucket 4096 -> 8191)
 * prints "done" and, when told to exit (argv[2] == "exit"), exits 2 s
 * later; otherwise it sleeps until killed, keeping its leaked blocks. ROUNDS is argv[1]; argv[3],
 * if given, is a pause in milliseconds after each round.
 * Built with -O1 -fno-omit-frame-pointer so that each call has a frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *kept[100000];        /* global: the compiler may not drop the leaked blocks */
int nkept;

__attribute__((noinline)) void leak_here(void)
{
    void *p = malloc(4096);
    memset(p, 1, 64);
    kept[nkept++] = p;
}

__attribute__((noinline)) void churn(size_t size, int n)
{
    void *blocks[128];
    for (int i = 0; i < n; i++) {
        blocks[i] = malloc(size);
        memset(blocks[i], 0, 8);
    }
    for (int i = 0; i < n; i++)
        free(blocks[i]);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    int leave = argc > 2 && strcmp(argv[2], "exit") == 0;
    int pause_ms = argc > 3 ? atoi(argv[3]) : 0;
    char line[16];
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ready\n");
    if (!fgets(line, sizeof line, stdin))
        return 1;
    for (int r = 0; r < rounds && nkept < 100000; r++) {
        churn(24, 100);
        churn(3000, 10);
        churn(100000, 1);
        leak_here();
        if (pause_ms > 0)
            usleep(pause_ms * 1000);
    }
    printf("done\n");
    if (leave) {
        sleep(2);       /* every leaked block is older than the deep dive's 1 s at the exit */
        return 0;
    }
    for (;;)
        pause();
}
