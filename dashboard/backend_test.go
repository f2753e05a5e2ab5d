package dashboard_test

import (
	"fmt"
	"testing"

	"github.com/feedcdc/feedcdc/dashboard"
)

func TestStatusLabelsAndFilters(t *testing.T) {
	for code, want := range map[int]string{200: "Submitted to service", 2: "Failed, will retry", 400: "Failed, require attention",
		1: "Failed, require attention", 0: "Awaiting submission", -1: "Dry run, not sent", 7: "Status 7"} {
		if got := dashboard.StatusLabel(code); got != want {
			t.Errorf("StatusLabel(%d) = %q, want %q", code, got, want)
		}
	}
	cases := map[string][]int{"": {2, 400, 1}, "failed": {2, 400, 1}, "retryable": {2}, "rejected": {400, 1}, "pending": {0}, "sent": {200}, "all": {200, 2, 400, 1, 0, -1}, "bogus": {}}
	for filter, want := range cases {
		var got []int
		for _, c := range []int{200, 2, 400, 1, 0, -1} {
			if (dashboard.ItemQuery{Status: filter}).MatchStatus(c) {
				got = append(got, c)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("filter %q matches %v, want %v", filter, got, want)
		}
	}
}
