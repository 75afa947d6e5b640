/* Where a process's single-precision matrix products go, by shape.
 *
 * A preloaded library that stands in for cblas_sgemm: it times each call,
 * runs the real one (the BLAS the process links, found with RTLD_NEXT) or,
 * with MK_SGEMM_FORTRAN_LIB set, the Fortran sgemm_ of that library instead
 * (a way to ask "what would this step take with that BLAS's products?"
 * without rebuilding), and at exit prints one line per distinct
 * (trans_a, trans_b, M, N, K, beta) to stderr: calls, total and mean time,
 * GFLOP/s, and the total over all shapes.
 *
 *   MAMBAKIT_AMX=0 LD_PRELOAD=build/bench/libsgemm_profile.so \
 *     build/experiments/mambakit bench train --d-model 256 --n-layer 4 \
 *     --batch 8 --seq-len 256 --threads 1 --warmup 0 --steps 20
 *
 * (MAMBAKIT_AMX=0: where the CPU has AMX, mambakit's float products run on
 * its tiles and never call cblas_sgemm.) Divide the totals by the steps run (warm-up steps included when
 * --warmup is not 0). Calls from several threads at once are counted
 * under a lock; their times overlap, so the total can exceed the wall
 * time. bench/README.md has what it showed for the transformers script's
 * model.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { kRowMajor = 101, kNoTrans = 111, kMaxShapes = 256 };

typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float*, int,
                               const float*, int, float, float*, int);
typedef void (*fortran_sgemm_fn)(const char*, const char*, const int*, const int*, const int*,
                                 const float*, const float*, const int*, const float*,
                                 const int*, const float*, float*, const int*);

struct Shape {
  int ta, tb, M, N, K;
  float beta;
  long calls;
  double seconds;
};

static struct Shape shapes[kMaxShapes];
static int n_shapes;
static long dropped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static cblas_sgemm_fn next_sgemm;
static fortran_sgemm_fn other_sgemm;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void report(void) {
  double total = 0;
  fprintf(stderr, "sgemm_profile: %s\n",
          other_sgemm ? "products run by MK_SGEMM_FORTRAN_LIB's sgemm_" : "products run by the linked BLAS");
  for (int i = 0; i < n_shapes; ++i) {
    const struct Shape* s = &shapes[i];
    total += s->seconds;
    fprintf(stderr,
            "  %c%c M=%6d N=%6d K=%6d beta=%-4g calls=%7ld total=%9.1f ms mean=%8.3f ms "
            "%7.1f GFLOP/s\n",
            s->ta == kNoTrans ? 'N' : 'T', s->tb == kNoTrans ? 'N' : 'T', s->M, s->N, s->K,
            (double)s->beta, s->calls, s->seconds * 1e3, s->seconds * 1e3 / (double)s->calls,
            2.0 * s->M * (double)s->N * s->K * (double)s->calls / s->seconds * 1e-9);
  }
  fprintf(stderr, "  all shapes: %.1f ms%s\n", total * 1e3,
          dropped ? " (more shapes than the table holds: some not counted)" : "");
}

static void init(void) {
  next_sgemm = (cblas_sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
  const char* lib = getenv("MK_SGEMM_FORTRAN_LIB");
  if (lib && *lib) {
    void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      fprintf(stderr, "sgemm_profile: cannot open %s: %s\n", lib, dlerror());
      exit(2);
    }
    other_sgemm = (fortran_sgemm_fn)dlsym(h, "sgemm_");
    if (!other_sgemm) {
      fprintf(stderr, "sgemm_profile: %s has no sgemm_\n", lib);
      exit(2);
    }
    /* One thread, as mambakit keeps its BLAS (MKL's setter, if it is one). */
    void (*set_threads)(int) = (void (*)(int))dlsym(h, "MKL_Set_Num_Threads");
    if (set_threads) set_threads(1);
  } else if (!next_sgemm) {
    fprintf(stderr, "sgemm_profile: no cblas_sgemm after this library\n");
    exit(2);
  }
  atexit(report);
}

static void record(int ta, int tb, int M, int N, int K, float beta, double seconds) {
  pthread_mutex_lock(&lock);
  int i = 0;
  while (i < n_shapes && !(shapes[i].ta == ta && shapes[i].tb == tb && shapes[i].M == M &&
                           shapes[i].N == N && shapes[i].K == K && shapes[i].beta == beta))
    ++i;
  if (i == n_shapes && n_shapes < kMaxShapes) {
    shapes[i] = (struct Shape){ta, tb, M, N, K, beta, 0, 0.0};
    ++n_shapes;
  }
  if (i < n_shapes) {
    shapes[i].calls += 1;
    shapes[i].seconds += seconds;
  } else {
    ++dropped;
  }
  pthread_mutex_unlock(&lock);
}

void cblas_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha, const float* A,
                 int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  pthread_once(&once, init);
  const double t0 = now();
  if (other_sgemm) {
    /* Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T. */
    const char a = ta == kNoTrans ? 'N' : 'T', b = tb == kNoTrans ? 'N' : 'T';
    if (order == kRowMajor)
      other_sgemm(&b, &a, &N, &M, &K, &alpha, B, &ldb, A, &lda, &beta, C, &ldc);
    else
      other_sgemm(&a, &b, &M, &N, &K, &alpha, A, &lda, B, &ldb, &beta, C, &ldc);
  } else {
    next_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  record(ta, tb, M, N, K, beta, now() - t0);
}
