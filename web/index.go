package web

import (
	"net/http"

	"slipway/configs"
	"slipway/views"
)

// plainIndex is the front page of a server without the read model (a
// test's): the repositories the viewer may read, by name.
func (s *Server) plainIndex(w http.ResponseWriter, r *http.Request) {
	cfg := s.config(r.Context())
	v := s.apiViewer(r)
	var rows []indexRepo
	if s.o.Repos != nil {
		names, err := s.o.Repos.Repos(r.Context())
		if err != nil {
			s.log.Error("list repositories", "err", err)
			http.Error(w, "could not list the repositories", http.StatusInternalServerError)
			return
		}
		for _, n := range names {
			if v.caller().Access(cfg, n).Has(configs.Read) {
				rc, _ := cfg.Repo(n)
				rows = append(rows, indexRepo{Repo: views.Repo{Name: n, Configured: rc != nil}, Public: rc != nil && rc.Public})
			}
		}
	}
	s.render(w, r, http.StatusOK, "index.html", "Repositories", rows)
}
