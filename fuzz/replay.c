/* A main for the fuzz targets without libFuzzer: runs the target once on
 * each file named on the command line. `make` builds every target this way
 * with the normal compiler, so `make check` replays the committed corpora
 * and crash inputs (t/fuzz_corpus.t, t/fuzz_regress.t) without clang. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f || fseek(f, 0, SEEK_END)) {
            perror(argv[i]);
            return 2;
        }
        long n = ftell(f);
        uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
        rewind(f);
        if (n < 0 || !buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
            fprintf(stderr, "%s: cannot read\n", argv[i]);
            return 2;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, (size_t)n);
        free(buf);
    }
    printf("%d inputs ran\n", argc - 1);
    return 0;
}
