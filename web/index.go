package web

import (
	"net/http"

	"slipway/configs"
)

// repoRow is one repository on the front page.
type repoRow struct {
	Name   string
	Public bool
}

// index lists the repositories the viewer may read.
func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	cfg := s.config(r.Context())
	v := s.viewerOf(r)
	var rows []repoRow
	if s.o.Repos != nil {
		names, err := s.o.Repos.Repos(r.Context())
		if err != nil {
			s.log.Error("list repositories", "err", err)
			http.Error(w, "could not list the repositories", http.StatusInternalServerError)
			return
		}
		for _, n := range names {
			if access(cfg, v, n).Has(configs.Read) {
				rc, _ := cfg.Repo(n)
				rows = append(rows, repoRow{Name: n, Public: rc != nil && rc.Public})
			}
		}
	}
	s.render(w, r, http.StatusOK, "index.html", "Repositories", rows)
}
