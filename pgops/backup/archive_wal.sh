#!/bin/bash
# Managed by pgops: edits here are overwritten on the next deploy.
#
# PostgreSQL's archive_command: `archive-wal %p COMMAND...` runs COMMAND (pgBackRest's
# archive-push) for every file, except a WAL segment of a past timeline that begins at or
# after where that timeline ends in this server's history (its newest .history file).
# Such a segment holds none of this server's WAL: it is a file recycled or preallocated
# under that timeline's name before the switch, which PostgreSQL marks for archiving once
# this server is a primary. When the timeline's own primary archived its real segment of
# that name, pgBackRest refuses the other copy ("already exists in the archive with a
# different checksum") and, as PostgreSQL archives in order, no WAL is archived after it.
# Skipped, it is logged here and PostgreSQL removes it as archived. Anything that cannot be
# read as such a segment goes to COMMAND. A standby (archive_mode = always) skips nothing:
# its pg_wal may hold its upstream's newer history before it switches to it.
set -u
export LC_ALL=C
path=${1:?usage: archive-wal WAL-PATH COMMAND...}
shift
(( $# )) || { echo "pgops archive-wal: no command to archive $path with" >&2; exit 1; }
name=${path##*/}
dir=${path%/*}
[[ $dir == "$path" ]] && dir=.

if [[ ! -e $dir/../standby.signal && ! -e $dir/../recovery.signal &&
      $name =~ ^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$ ]]; then
    tli=$((16#${BASH_REMATCH[1]}))
    log=$((16#${BASH_REMATCH[2]}))
    seg=$((16#${BASH_REMATCH[3]}))
    newest=""
    for h in "$dir"/*.history; do
        [[ ${h##*/} =~ ^[0-9A-F]{8}\.history$ ]] && newest=$h  # the glob sorts: last is newest
    done
    size=$(stat -c %s -- "$path" 2>/dev/null || echo 0)
    if [[ -n $newest ]] && (( $((16#$(basename "$newest" .history))) > tli )) &&
            (( size > 0 && (size & (size - 1)) == 0 )); then
        # "tli<TAB>switchpoint<TAB>reason": where timeline tli ends in this server's history
        end=$(while IFS=$'\t ' read -r t lsn _; do
                  [[ $t == "$tli" ]] && { echo "$lsn"; break; }
              done < "$newest")
        if [[ $end =~ ^([0-9A-F]+)/([0-9A-F]+)$ ]]; then
            end_lsn=$(( (16#${BASH_REMATCH[1]} << 32) + 16#${BASH_REMATCH[2]} ))
            start_lsn=$(( (log << 32) + seg * size ))
            if (( start_lsn >= end_lsn )); then
                echo "pgops archive-wal: $name not archived: timeline $tli ends at $end in" \
                     "this server's history ($(basename "$newest")), before this segment" >&2
                exit 0
            fi
        fi
    fi
fi
exec "$@"
