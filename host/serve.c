/*
 * serve.c — placeholder for `stripe-connect serve` (the serve issue).
 */
#include <stdio.h>
#include "host.h"

int host_serve_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "%s: serve is not built yet\n", host_progname);
    return 1;
}
