#!/bin/sh
# Usage: cuda/ptxas-budget.sh BUDGET_FILE PTXAS_LOG
# Checks each kernel in a `nvcc -Xptxas -v` report against the first line of BUDGET_FILE whose
# glob matches its name: fails (exit 1) on more registers, spill bytes or stack frame bytes than
# that line allows.  Prints one line per checked kernel and architecture.
budget=$1 log=$2
[ -r "$budget" ] && [ -r "$log" ] || { echo "usage: ptxas-budget.sh BUDGET_FILE PTXAS_LOG" >&2; exit 2; }
# One line per compiled entry function: mangled name, architecture, registers, spill bytes,
# stack frame bytes.
kernels=$(awk '
    function flush() { if (name != "") print name, arch, regs, spill, frame }
    /Compiling entry function/ { flush()
                                 name = $0; sub(/.*function \047/, "", name); sub(/\047.*/, "", name)
                                 arch = $0; sub(/.*for \047/, "", arch); sub(/\047.*/, "", arch)
                                 regs = 0; spill = 0; frame = 0 }
    /bytes spill stores/       { if (name != "") { frame = $1; spill = $5 + $9 } }
    /Used [0-9]+ registers/    { if (name != "") for (i = 1; i < NF; i++) if ($(i+1) ~ /^registers/) regs = $i }
    END                        { flush() }' "$log")
status=0
# The loop reads from a here-document so that `status` survives it.
while read -r mangled arch regs spill frame; do
    [ -n "$mangled" ] || continue
    # "void ns::wkv_fwd<64>(int, ...)" -> "wkv_fwd"
    name=$(echo "$mangled" | c++filt | sed 's/[<(].*//; s/.* //; s/.*:://')
    limit=$(while read -r glob max_regs max_spill max_frame; do
        case "$glob" in ''|'#'*) continue ;; esac
        # shellcheck disable=SC2254
        case "$name" in $glob) echo "$max_regs $max_spill ${max_frame:-any}"; break ;; esac
    done < "$budget")
    [ -n "$limit" ] || continue
    set -- $limit
    max_regs=$1 max_spill=$2 max_frame=$3
    over=
    [ "$regs" -gt "$max_regs" ] && over="$over, $regs registers (budget $max_regs)"
    [ "$spill" -gt "$max_spill" ] && over="$over, $spill spill bytes (budget $max_spill)"
    [ "$max_frame" != any ] && [ "$frame" -gt "$max_frame" ] && over="$over, $frame bytes of stack frame (budget $max_frame)"
    if [ -n "$over" ]; then
        echo "ptxas-budget: $log: $name on $arch over $budget:${over#,}" >&2
        status=1
    else
        echo "ptxas-budget: $name on $arch: $regs registers (budget $max_regs), $spill spill bytes, $frame bytes of stack frame"
    fi
done <<EOT
$kernels
EOT
exit $status
