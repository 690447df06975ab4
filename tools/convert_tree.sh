#!/usr/bin/env bash
# Convert every subfolder of a folder with one `translate convert` process. Run with -h for usage.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: convert_tree.sh CHECKPOINT INPUT_ROOT OUTPUT_ROOT [options...]

Translates the images in every immediate subfolder of INPUT_ROOT (recursively inside each) into
the same-named subfolder of OUTPUT_ROOT, keeping relative paths:
  INPUT_ROOT/<sub>/<rel>  ->  OUTPUT_ROOT/<sub>/<rel>
in a single `translate convert` process (the model is loaded once). Files directly inside
INPUT_ROOT, hidden files and folders, and non-images are skipped; images are the extensions
jpg jpeg png bmp tif tiff webp in any case. A per-subfolder summary is printed first.
Options after the three paths go to `translate convert` unchanged (--direction, --batch-size,
--device, ...). Folder names with spaces and unicode are fine; a file whose name contains a
newline cannot be passed on and is reported (exit status 1).

Exit status: that of `translate convert`; 1 when there is nothing to convert or files had to be
skipped; 2 for usage errors.
EOF
}

# shellcheck source=_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
check_paths_args convert_tree.sh "CHECKPOINT INPUT_ROOT OUTPUT_ROOT" 0 "$@"
checkpoint=$1
input_root=$2
output_root=$3
shift 3
if [ ! -d "$input_root" ]; then
    echo "convert_tree.sh: INPUT_ROOT '$input_root' is not a folder" >&2
    exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
shopt -s nullglob extglob
root=${input_root%%+(/)}  # "data/" -> "data"; "/" -> "" (paths become "/sub/...")
out_real=""
if [ -d "$output_root" ]; then
    out_real=$(cd -- "$output_root" && pwd -P)
fi

# find(1) expression for the image files translate reads (translate.data.io.IMAGE_EXTENSIONS).
image_names=(\( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.bmp'
             -o -iname '*.tif' -o -iname '*.tiff' -o -iname '*.webp' \))

files=()        # every image to convert, in subfolder order
subs=()         # subfolders that have images
sub_counts=()
unlistable=0
for sub in "$root"/*/; do
    sub=${sub%/}
    name=${sub##*/}
    if [ -n "$out_real" ] && [ "$(cd -- "$sub" && pwd -P)" = "$out_real" ]; then
        echo "$name/: is OUTPUT_ROOT itself, skipped"
        continue
    fi
    n=0
    # -H: follow a symlinked subfolder itself, but no symlinked folders inside it (no cycles).
    while IFS= read -r -d '' file; do
        if [[ $file == *$'\n'* ]]; then
            echo "convert_tree.sh: cannot pass a file name containing a newline, skipped: $(printf '%q' "$file")" >&2
            unlistable=$((unlistable + 1))
            continue
        fi
        [ -f "$file" ] || continue  # a symlink to something that is not a file
        files+=("$file")
        n=$((n + 1))
    done < <(find -H "$sub" -mindepth 1 -name '.*' -prune -o \( -type f -o -type l \) \
                 "${image_names[@]}" -print0 | LC_ALL=C sort -z)
    if [ "$n" -eq 0 ]; then
        echo "$name/: no images, skipped"
        continue
    fi
    subs+=("$sub")
    sub_counts+=("$n")
    echo "$name/: $n image(s) -> $output_root/$name/"
done

top=$(find "$root/" -mindepth 1 -maxdepth 1 ! -name '.*' \( -type f -o -type l \) \
          "${image_names[@]}" -print | wc -l)
if [ "$top" -gt 0 ]; then
    echo "($top image(s) directly in $input_root skipped: only subfolders are converted)"
fi
if [ "${#files[@]}" -eq 0 ]; then
    echo "convert_tree.sh: no images found in the subfolders of '$input_root'" >&2
    exit 1
fi

# `translate convert` mirrors a folder INPUT relative to INPUT, and a `-` list relative to the
# common parent folder of the listed files. With images in two or more subfolders that parent
# is the root; with a single subfolder it may be deeper, so that case converts the subfolder as
# a folder into OUTPUT_ROOT/<sub>. Either way one process does all the work.
status=0
if [ "${#subs[@]}" -eq 1 ]; then
    name=${subs[0]##*/}
    bash "$here/convert_folder.sh" "$checkpoint" "${subs[0]}" "$output_root/$name" "$@" || status=$?
else
    printf '%s\n' "${files[@]}" |
        bash "$here/convert_folder.sh" "$checkpoint" - "$output_root" "$@" || status=$?
fi

if [ "$status" -ne 0 ]; then
    echo "convert_tree.sh: translate convert failed (exit status $status)" >&2
    exit "$status"
fi
echo "converted ${#files[@]} image(s) from ${#subs[@]} subfolder(s) of $input_root into $output_root"
if [ "$unlistable" -gt 0 ]; then
    echo "convert_tree.sh: $unlistable file(s) with a newline in the name were not converted" >&2
    exit 1
fi
