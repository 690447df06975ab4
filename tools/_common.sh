# Shared by the tools/*.sh wrappers over `translate convert`; sourced, not run. The caller
# defines usage() (the help text) first.

# check_paths_args SCRIPT "NAME1 NAME2 NAME3" DASH_OK "$@"
#   -h / --help as the first argument: print the usage, exit 0. Fewer than three arguments, or
#   one of the first three that looks like an option: error on stderr with the usage, exit 2.
#   DASH_OK=1 accepts a lone "-" (stdin) as one of the three.
check_paths_args() {
    local script=$1 names=$2 dash_ok=$3 arg
    shift 3
    case "${1:-}" in
        -h | --help)
            usage
            exit 0
            ;;
    esac
    if [ "$#" -lt 3 ]; then
        echo "$script: expected $names, got $# argument(s)" >&2
        usage >&2
        exit 2
    fi
    for arg in "$1" "$2" "$3"; do
        if { [ "$dash_ok" != 1 ] || [ "$arg" != "-" ]; } && [ "${arg#-}" != "$arg" ]; then
            echo "$script: '$arg' looks like an option; options go after $names" >&2
            usage >&2
            exit 2
        fi
    done
}
