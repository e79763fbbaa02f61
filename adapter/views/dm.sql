-- DM: the SQL step over the views sdtm_dm_subject, sdtm_dm_patient, sdtm_study_arm
SELECT
  element_at(split(s.KEY, '/'), 1) AS STUDYID,
  'DM' AS DOMAIN,
  element_at(split(s.KEY, '/'), 2) AS USUBJID,
  s.SUBJID,
  s.RFSTDTC,
  s.RFENDTC,
  s.SITEID,
  p.BRTHDTC,
  coalesce(p.AGE_TEXT, CAST(p.AGE AS STRING)) AS AGE,
  p.AGEU,
  coalesce(p.SEX_TEXT, CASE p.GENDER WHEN 'male' THEN 'M' WHEN 'female' THEN 'F'
    WHEN 'unknown' THEN 'U' END) AS SEX,
  coalesce(s.ARMCD, assigned.ARMCD) AS ARMCD,
  s.ARM,
  coalesce(s.ACTARMCD, actual.ARMCD) AS ACTARMCD,
  s.ACTARM,
  p.RACE,
  p.ETHNIC,
  p.COUNTRY,
  s.DMDTC
FROM sdtm_dm_subject s
LEFT JOIN sdtm_dm_patient p ON p.PATIENT = s.PATIENT
LEFT JOIN sdtm_study_arm assigned ON assigned.STUDY = s.STUDY AND assigned.NAME = s.ARM
LEFT JOIN sdtm_study_arm actual ON actual.STUDY = s.STUDY AND actual.NAME = s.ACTARM
ORDER BY USUBJID
