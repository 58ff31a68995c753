package main

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"iter"
	"strconv"
	"strings"

	"github.com/wecomkit/wecom"
)

// writeUsers writes each member as it is decrypted: one JSON object per
// line, or one CSV row.
func writeUsers(w io.Writer, format string, users iter.Seq2[wecom.ExportedUser, error]) (int, error) {
	n := 0
	var cw *csv.Writer
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if format == "csv" {
		cw = csv.NewWriter(w)
		if err := cw.Write([]string{"userid", "name", "department", "main_department", "position", "mobile", "email", "gender", "status"}); err != nil {
			return 0, err
		}
	}
	for u, err := range users {
		if err != nil {
			return n, err
		}
		if cw != nil {
			err = cw.Write([]string{u.UserID, u.Name, ints(u.Department), strconv.Itoa(u.MainDepartment),
				u.Position, u.Mobile, u.Email, strconv.Itoa(int(u.Gender)), strconv.Itoa(u.Status)})
		} else {
			err = enc.Encode(u)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	if cw != nil {
		cw.Flush()
		return n, cw.Error()
	}
	return n, nil
}

// writeDepartments is writeUsers for departments.
func writeDepartments(w io.Writer, format string, depts iter.Seq2[wecom.ExportedDepartment, error]) (int, error) {
	n := 0
	var cw *csv.Writer
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if format == "csv" {
		cw = csv.NewWriter(w)
		if err := cw.Write([]string{"id", "name", "name_en", "parentid", "order", "department_leader"}); err != nil {
			return 0, err
		}
	}
	for d, err := range depts {
		if err != nil {
			return n, err
		}
		if cw != nil {
			err = cw.Write([]string{strconv.Itoa(d.ID), d.Name, d.NameEn, strconv.Itoa(d.ParentID),
				strconv.Itoa(d.Order), strings.Join(d.DepartmentLeader, ";")})
		} else {
			err = enc.Encode(d)
		}
		if err != nil {
			return n, err
		}
		n++
	}
	if cw != nil {
		cw.Flush()
		return n, cw.Error()
	}
	return n, nil
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ";")
}
