/* banned.h — poisons C library functions that are easy to misuse.
 *
 * Included last by every .c file of the project (through util.h). Use buf_*
 * for strings, snprintf for bounded formatting and num_parse_* for numbers.
 */
#ifndef BHATTI_BANNED_H
#define BHATTI_BANNED_H

#pragma GCC poison strcpy strcat sprintf vsprintf gets strtok
#pragma GCC poison atoi atol atoll

#endif
