#!/bin/sh
# Usage: cuda/ptxas-budget.sh BUDGET_FILE PTXAS_LOG
# Checks each kernel in a `nvcc -Xptxas -v` report against the first line of BUDGET_FILE whose
# glob matches its name: fails (exit 1) on more registers or more spill bytes than that line
# allows.  Prints one line per checked kernel and architecture.
budget=$1 log=$2
[ -r "$budget" ] && [ -r "$log" ] || { echo "usage: ptxas-budget.sh BUDGET_FILE PTXAS_LOG" >&2; exit 2; }
# One line per compiled entry function: mangled name, architecture, registers, spill bytes.
kernels=$(awk '
    /Compiling entry function/ { if (name != "") print name, arch, regs, spill
                                 name = $0; sub(/.*function \047/, "", name); sub(/\047.*/, "", name)
                                 arch = $0; sub(/.*for \047/, "", arch); sub(/\047.*/, "", arch)
                                 regs = 0; spill = 0 }
    /bytes spill stores/       { if (name != "") spill = $5 + $9 }
    /Used [0-9]+ registers/    { if (name != "") for (i = 1; i < NF; i++) if ($(i+1) ~ /^registers/) regs = $i }
    END                        { if (name != "") print name, arch, regs, spill }' "$log")
status=0
# The loop reads from a here-document so that `status` survives it.
while read -r mangled arch regs spill; do
    [ -n "$mangled" ] || continue
    # "void ns::wkv_fwd<64>(int, ...)" -> "wkv_fwd"
    name=$(echo "$mangled" | c++filt | sed 's/[<(].*//; s/.* //; s/.*:://')
    limit=$(while read -r glob max_regs max_spill; do
        case "$glob" in ''|'#'*) continue ;; esac
        # shellcheck disable=SC2254
        case "$name" in $glob) echo "$max_regs $max_spill"; break ;; esac
    done < "$budget")
    [ -n "$limit" ] || continue
    max_regs=${limit% *} max_spill=${limit#* }
    if [ "$regs" -gt "$max_regs" ] || [ "$spill" -gt "$max_spill" ]; then
        echo "ptxas-budget: $log: $name on $arch: $regs registers, $spill spill bytes; the budget in $budget is $max_regs, $max_spill" >&2
        status=1
    else
        echo "ptxas-budget: $name on $arch: $regs registers (budget $max_regs), $spill spill bytes (budget $max_spill)"
    fi
done <<EOT
$kernels
EOT
exit $status
