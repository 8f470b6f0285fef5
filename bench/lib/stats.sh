# Statistics shared by bench/run and bench/run-tls (sourced).

# median: the median of the numbers on stdin, one per line.
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
# paired A B: the per-round ratios B[i]/A[i] of two space-separated lists in
# round order, as "median min max below" (below: rounds with a ratio <= 1).
# A round's two servers run back to back, so a slow drift of the machine's
# speed between rounds cancels out of their ratio (not of either median).
paired() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) { r[i] = y[i] / x[i]; if (r[i] <= 1.0005) below++ }
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
    m = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
    printf "%.2f %.2f %.2f %d", m, r[1], r[n], below }'
}
