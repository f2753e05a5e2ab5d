package dashboard_test

import (
	"errors"
	"fmt"
	"iter"
	"testing"

	"github.com/feedcdc/feedcdc/dashboard"
)

func scan(rows []dashboard.ItemRow, failAt int) iter.Seq2[dashboard.ItemRow, error] {
	return func(yield func(dashboard.ItemRow, error) bool) {
		for i, r := range rows {
			if i == failAt {
				yield(dashboard.ItemRow{}, errors.New("bolt: tx closed"))
				return
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}

func TestCollectPage(t *testing.T) {
	var rows []dashboard.ItemRow
	for i := range 25 {
		st := []int{200, 2, 400, 1, 0}[i%5]
		feed := "products"
		if i%2 == 1 {
			feed = "variants"
		}
		rows = append(rows, dashboard.ItemRow{Feed: feed, FeedID: fmt.Sprint(i), Status: st,
			Identifiers: map[string]string{"sku": fmt.Sprintf("SKU-%02d", i)}})
	}
	// failed = statuses 2, 400, 1 = 3 of every 5 → 15 rows; page 2 of size 4.
	p, err := dashboard.CollectPage(dashboard.ItemQuery{Offset: 4, Limit: 4}, scan(rows, -1))
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 15 || len(p.Items) != 4 || p.Items[0].FeedID != "7" || p.Offset != 4 || p.Limit != 4 {
		t.Fatalf("page: total %d items %+v", p.Total, p.Items)
	}
	p, _ = dashboard.CollectPage(dashboard.ItemQuery{Feed: "variants", Status: dashboard.FilterAll, SKU: "sku-1"}, scan(rows, -1))
	if p.Total != 5 { // SKU-11, 13, 15, 17, 19
		t.Fatalf("variants sku-1: %d %+v", p.Total, p.Items)
	}
	p, _ = dashboard.CollectPage(dashboard.ItemQuery{Offset: 100, Limit: 10}, scan(rows, -1))
	if p.Total != 15 || len(p.Items) != 0 {
		t.Fatalf("past the end: %+v", p)
	}
	if _, err := dashboard.CollectPage(dashboard.ItemQuery{}, scan(rows, 3)); err == nil || err.Error() != "bolt: tx closed" {
		t.Fatalf("scan error: %v", err)
	}
}

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
