#!/bin/sh
# enroll.sh STUDENT COURSE: enrol student-STUDENT in course-COURSE, keeping
# at most $MAX_STUDENTS students per course and $MAX_COURSES courses per
# student, however many copies run at once. Exits 0 when the student is
# enrolled (or already was), 1 when a limit refuses, 2 on an error.
set -u
student=student-$1 course=course-$2
max_students=${MAX_STUDENTS:-30} max_courses=${MAX_COURSES:-5}
while :; do
	# 1. Read what the decision depends on. The store's last position
	#    comes first: nothing the second read misses is before it.
	last=$(evt tail -n 1 --jq .position) || [ $? -eq 4 ] || exit 2 # 4: no store yet
	seen=$(evt tail "$course" "$student" --from start --type Enrolled \
		--jq '"\(.position) \(.stream) \(.data.student // .data.course)"') || exit 2
	# 2. Decide: the last position seen, the two counts, already enrolled?
	set -- $(printf '%s\n' "$seen" | awk -v c="$course" -v s="$student" -v last="${last:-0}" '
		$2 == c && $3 == s { dup = 1 }
		$2 == c { nc++ }
		$2 == s { ns++ }
		$1 + 0 > last + 0 { last = $1 }
		END { print last, nc + 0, ns + 0, dup + 0 }')
	after=$1
	if [ "$4" = 1 ]; then echo "$student is in $course"; exit 0; fi
	if [ "$2" -ge "$max_students" ]; then echo "$course is full" >&2; exit 1; fi
	if [ "$3" -ge "$max_courses" ]; then echo "$student has $max_courses courses" >&2; exit 1; fi
	# 3. Append to both streams at once, only if no enrolment in either
	#    came after what was read; on exit 3 read again and decide again.
	printf '{"stream":"%s","type":"Enrolled","data":{"student":"%s"}}\n{"stream":"%s","type":"Enrolled","data":{"course":"%s"}}\n' \
		"$course" "$student" "$student" "$course" |
		evt append -q --fail-if-match "$course:Enrolled" --fail-if-match "$student:Enrolled" --after "$after"
	case $? in
	0) echo "$student enrolled in $course"; exit 0 ;;
	3) echo "conflict: $course or $student changed after position $after; reading again" >&2 ;;
	*) exit 2 ;;
	esac
done
