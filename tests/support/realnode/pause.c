/* The pod sandbox's PID 1 for the real-node test cluster (tests/support/realnode/images.py):
 * it holds the pod's namespaces open, reaps orphaned children, and exits on SIGINT or
 * SIGTERM. Built with `gcc -Os -static`, since no registry can give us a pause image. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

int main(void) {
    signal(SIGINT, quit);
    signal(SIGTERM, quit);
    signal(SIGCHLD, reap);
    for (;;) pause();
    return 0;
}
