{#- Access to the run's parameters: config/scoring.yml (var `scoring`) and the as-of date. -#}

{% macro scoring(path) -%}
  {#- scoring('health.green_min') -> the value from config/scoring.yml, passed as var `scoring`. -#}
  {%- set node = var('scoring', none) -%}
  {%- if node is none -%}
    {%- if execute -%}
      {{ exceptions.raise_compiler_error("dbt var 'scoring' is missing: run through `loyalty warehouse build`, or pass --vars from loyalty_monitor.warehouse.dbt_vars()") }}
    {%- else -%}
      {{ return(0) }}
    {%- endif -%}
  {%- endif -%}
  {%- set ns = namespace(node=node) -%}
  {%- for part in path.split('.') -%}
    {%- if ns.node is mapping and part in ns.node -%}
      {%- set ns.node = ns.node[part] -%}
    {%- else -%}
      {{ exceptions.raise_compiler_error("config/scoring.yml has no key '" ~ path ~ "'") }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(ns.node) }}
{%- endmacro %}

{% macro as_of_date_literal() -%}
  {#- The as-of date as a SQL date literal: var `as_of_date` (YYYY-MM-DD), else the environment
      variable LOYALTY_AS_OF_DATE, else today in UTC. `loyalty warehouse build` passes the
      environment variable: dbt's partial parsing compares the --vars of the last parse, so a var
      that changes every day made every daily run parse the whole project again. The value is
      read only when dbt executes (it does not matter while dbt parses), so it never enters the
      parsed manifest either. -#}
  {%- if not execute -%}{{ return("cast('1900-01-01' as date)") }}{%- endif -%}
  {%- set value = var('as_of_date', none) or env_var('LOYALTY_AS_OF_DATE', '')
                  or modules.datetime.datetime.utcnow().date().isoformat() -%}
  {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value | string) -%}
    {{ exceptions.raise_compiler_error("var as_of_date must be YYYY-MM-DD, got " ~ value) }}
  {%- endif -%}
  cast('{{ value }}' as date)
{%- endmacro %}

{% macro sql_string_list(values) -%}
  {%- for v in values -%}'{{ v | replace("'", "''") }}'{{ ", " if not loop.last }}{%- endfor -%}
{%- endmacro %}

{% macro sql_string(value) -%}
  '{{ value | replace("'", "''") }}'
{%- endmacro %}

{% macro reporting_rate(currency_expr) -%}
  {#- Units of the reporting currency per unit of `currency_expr` (config/scoring.yml `reporting.rates`);
      null for a currency without a rate, so it is never silently counted at 1:1. -#}
  (case {{ currency_expr }}
    {%- for code, rate in scoring('reporting.rates').items() %}
    when '{{ code }}' then {{ rate }}
    {%- endfor %}
  end)
{%- endmacro %}

{% macro action_needed_rules() -%}
  {#- The alert rules that state facts needing action now (not churn predictions): those of
      config/scoring.yml `alerts.rules` without a `reason`, by name (the order of a mapping that
      reaches dbt as a var is not the file's on every path: a fixed order keeps the SQL, and the
      rows it writes, the same on every run) (loyalty_monitor.scoring.action_rules). -#}
  {%- set rules = scoring('alerts.rules') -%}
  {%- if rules is not mapping -%}{{ return([]) }}{%- endif -%}
  {%- set out = [] -%}
  {%- for name, spec in rules.items() | sort if spec.get('reason') is none -%}{%- do out.append(name) -%}{%- endfor -%}
  {{ return(out) }}
{%- endmacro %}

{% macro case_reason_rules() -%}
  {#- The scorecard rules, as (rule, words) pairs: those of config/scoring.yml `alerts.rules` with a
      `reason`, the words a churn-risk case lists when the rule held on its opening day
      (loyalty_monitor.scoring.reason_rules), by name: the reasons' order in a case must not depend
      on which path the var took (an event-driven run and a full refresh listed them differently). -#}
  {%- set rules = scoring('alerts.rules') -%}
  {%- if rules is not mapping -%}{{ return([]) }}{%- endif -%}
  {%- set out = [] -%}
  {%- for name, spec in rules.items() | sort if spec.get('reason') -%}{%- do out.append((name, spec['reason'])) -%}{%- endfor -%}
  {{ return(out) }}
{%- endmacro %}

{% macro drift_last_day() -%}
  {#- The last day the drift model scores: the as-of date, but never a day that is not over yet
      (UTC). An event-driven run during the day builds the rest up to today; the drift model's
      population parameters are written once per day and kept (int_portfolio_days), so they must
      not be estimated from half a day. Silence is judged over weeks: a day of latency. -#}
  {%- if not execute -%}{{ return(as_of_date_literal()) }}{%- endif -%}
  {%- set yesterday = (modules.datetime.datetime.utcnow().date() - modules.datetime.timedelta(days=1)).isoformat() -%}
  {{ return("least(" ~ as_of_date_literal() ~ ", cast('" ~ yesterday ~ "' as date))") }}
{%- endmacro %}
