{
  "targets": [
    {
      "target_name": "peercred",
      "sources": ["peercred.c"],
      "cflags": ["-Wall", "-Wextra", "-Werror", "-O2"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["peercred.c"] }]
      ]
    }
  ]
}
