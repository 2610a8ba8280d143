/* The engine's scalar type: float32, or float64 when built with -DACH_F64
 * (the finite-difference tests run the very same code in double). */
#ifndef ACH_REAL_H
#define ACH_REAL_H
#ifdef ACH_F64
typedef double real;
#else
typedef float real;
#endif
#endif
