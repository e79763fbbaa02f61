-- PR: the SQL step over the views sdtm_pr
SELECT
  element_at(split(KEY, '/'), 1) AS STUDYID,
  'PR' AS DOMAIN,
  element_at(split(KEY, '/'), 2) AS USUBJID,
  element_at(split(KEY, '/'), 3) AS PRSEQ,
  PRREFID,
  PRTRT,
  PRCAT,
  PRLOC,
  PRLAT,
  coalesce(START, AT) AS PRSTDTC,
  END AS PRENDTC,
  CAST(VISITNUM AS STRING) AS VISITNUM,
  VISIT,
  EPOCH
FROM sdtm_pr
ORDER BY USUBJID, try_cast(PRSEQ AS DECIMAL(38, 10)), PRSEQ
