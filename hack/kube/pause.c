// The pod sandbox's process (the "pause" container): holds the pod's namespaces, reaps zombies, exits on SIGTERM
// or SIGINT. Built static by hack/kube/pause.sh into a one-file OCI image, so the kubelet tier pulls nothing.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, 0, WNOHANG) > 0) {
  }
}

int main(void) {
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  signal(SIGCHLD, reap);
  for (;;) pause();
}
