/* Floating point: double-precision n-body simulation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { B = 5 };
static double px[B], py[B], pz[B], vx[B], vy[B], vz[B], m[B];

static double energy(void) {
    double e = 0;
    for (int i = 0; i < B; i++) {
        e += 0.5 * m[i] * (vx[i] * vx[i] + vy[i] * vy[i] + vz[i] * vz[i]);
        for (int j = i + 1; j < B; j++) {
            double dx = px[i] - px[j], dy = py[i] - py[j], dz = pz[i] - pz[j];
            e -= m[i] * m[j] / sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    return e;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 3000000;
    for (int i = 0; i < B; i++) {
        px[i] = i * 1.5 - 3; py[i] = (i % 3) * 0.7; pz[i] = (i % 2) * -0.4;
        vx[i] = 0.01 * i; vy[i] = -0.02 * (i % 4); vz[i] = 0.005 * i; m[i] = 1.0 + i * 0.25;
    }
    double e0 = energy();
    const double dt = 0.001;
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < B; i++)
            for (int j = i + 1; j < B; j++) {
                double dx = px[i] - px[j], dy = py[i] - py[j], dz = pz[i] - pz[j];
                double d2 = dx * dx + dy * dy + dz * dz + 0.01;
                double mag = dt / (d2 * sqrt(d2));
                vx[i] -= dx * m[j] * mag; vy[i] -= dy * m[j] * mag; vz[i] -= dz * m[j] * mag;
                vx[j] += dx * m[i] * mag; vy[j] += dy * m[i] * mag; vz[j] += dz * m[i] * mag;
            }
        for (int i = 0; i < B; i++) { px[i] += dt * vx[i]; py[i] += dt * vy[i]; pz[i] += dt * vz[i]; }
    }
    printf("nbody %d: %.9f %.9f\n", steps, e0, energy());
    return 0;
}
