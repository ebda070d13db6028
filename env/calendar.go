package env

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// CheckCalendar reports whether s is a systemd calendar expression (systemd.time(7),
// "CALENDAR EVENTS"), as OnCalendar= of the update timer needs. It checks the grammar
// and field ranges in Go because env.yml is checked on admins' laptops, which need not
// run systemd. The error does not repeat s or parts of it.
func CheckCalendar(s string) error {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return fmt.Errorf("is an empty calendar expression")
	}
	bad := func(why string) error {
		return fmt.Errorf("is not a systemd calendar expression: %s (for example \"*-*-* 06:30:00\" or \"Sun 06:30\")", why)
	}
	if len(fields) == 1 && strings.HasPrefix(fields[0], "@") {
		if _, err := strconv.ParseUint(fields[0][1:], 10, 64); err != nil {
			return bad("@ must be followed by seconds since the epoch")
		}
		return nil
	}
	if last := fields[len(fields)-1]; len(fields) > 1 && timezonePattern.MatchString(last) && checkWeekdays(last) != nil {
		fields = fields[:len(fields)-1]
	}
	if len(fields) == 1 && calendarShorthands[strings.ToLower(fields[0])] {
		return nil
	}
	if isWeekdays(fields[0]) {
		if err := checkWeekdays(fields[0]); err != nil {
			return bad(err.Error())
		}
		fields = fields[1:]
	}
	var date, clock string
	for i, f := range fields {
		switch {
		case strings.Contains(f, ":") && clock == "":
			clock = f
		case strings.ContainsAny(f, "-~") && date == "" && clock == "":
			date = f
		default:
			return bad(fmt.Sprintf("word %d is not where a weekday, date or time can be", i+1))
		}
	}
	if date != "" {
		if err := checkDate(date); err != nil {
			return bad(err.Error())
		}
	}
	if clock != "" {
		if err := checkClock(clock); err != nil {
			return bad(err.Error())
		}
	}
	return nil
}

var (
	calendarShorthands = map[string]bool{"minutely": true, "hourly": true, "daily": true, "weekly": true,
		"monthly": true, "yearly": true, "annually": true, "quarterly": true, "semiannually": true}
	weekdayNames = map[string]bool{"mon": true, "tue": true, "wed": true, "thu": true, "fri": true, "sat": true, "sun": true,
		"monday": true, "tuesday": true, "wednesday": true, "thursday": true, "friday": true, "saturday": true, "sunday": true}
	timezonePattern = regexp.MustCompile(`^(UTC|[A-Z][A-Za-z_+-]*(/[A-Za-z0-9_+-]+)+)$`)
	weekdaysPattern = regexp.MustCompile(`^[A-Za-z]`)
)

func isWeekdays(s string) bool {
	return weekdaysPattern.MatchString(s) && !calendarShorthands[strings.ToLower(s)]
}

func checkWeekdays(s string) error {
	for _, item := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(item, "..")
		if !isRange {
			a, b, isRange = strings.Cut(item, "-")
		}
		for _, d := range []string{a, b} {
			if (d != "" || isRange) && !weekdayNames[strings.ToLower(d)] {
				return fmt.Errorf("weekdays must be Mon … Sun")
			}
		}
	}
	return nil
}

// checkDate checks [YEAR-]MONTH-DAY, where "~" before the day counts from the month's end.
func checkDate(s string) error {
	var parts []string
	if i := strings.Index(s, "~"); i >= 0 {
		parts = append(strings.Split(s[:i], "-"), s[i+1:])
	} else {
		parts = strings.Split(s, "-")
	}
	limits := [][2]int{{1, 12}, {1, 31}}
	names := []string{"month", "day"}
	switch len(parts) {
	case 2:
	case 3:
		limits = append([][2]int{{1970, 2199}}, limits...)
		names = append([]string{"year"}, names...)
	default:
		return fmt.Errorf("the date must be YEAR-MONTH-DAY or MONTH-DAY")
	}
	for i, p := range parts {
		if err := checkComponent(p, names[i], limits[i][0], limits[i][1], false); err != nil {
			return err
		}
	}
	return nil
}

func checkClock(s string) error {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Errorf("the time must be HOUR:MINUTE[:SECOND]")
	}
	names := []string{"hour", "minute", "second"}
	for i, p := range parts {
		if err := checkComponent(p, names[i], 0, []int{23, 59, 59}[i], i == 2); err != nil {
			return err
		}
	}
	return nil
}

// checkComponent checks a comma list of "*", N, N..M, each optionally "/STEP".
func checkComponent(s, name string, lo, hi int, fraction bool) error {
	for _, item := range strings.Split(s, ",") {
		val, step, hasStep := strings.Cut(item, "/")
		if hasStep {
			if n, err := strconv.Atoi(step); err != nil || n < 1 {
				return fmt.Errorf("the %s: the repetition after / must be a positive number", name)
			}
		}
		if val == "*" {
			continue
		}
		a, b, isRange := strings.Cut(val, "..")
		for _, v := range []string{a, b} {
			if v == "" && !isRange {
				continue
			}
			if fraction {
				v, _, _ = strings.Cut(v, ".")
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("the %s must be * or numbers from %d to %d", name, lo, hi)
			}
		}
	}
	return nil
}
