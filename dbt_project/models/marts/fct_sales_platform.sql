{#- The sales platform for leadership, per month (its last day, or the as-of date for the current
    month) by segment and country:
      breadth  the customer mix: customers, new customers, share of all customers
      height   revenue in the trailing year as a share of annual potential
      depth    loyalty: mean rational and emotional loyalty, share of ambassadors, and the
               red / yellow / green split of relationship health.
    Sums and means are rounded (cents, hundredths) so results do not depend on summation order. -#}
with loyalty_matrix as (
    select * from {{ ref('fct_loyalty_matrix') }}
),

customer_periods as (
    select
        period_month,
        period_end_date,
        customer_id,
        segment,
        country,
        rational_loyalty,
        emotional_loyalty,
        quadrant,
        revenue_trailing_year,
        annual_potential,
        status,
        is_new_customer as is_new
    from loyalty_matrix
),

grouped as (
    select
        period_month,
        period_end_date,
        segment,
        country,
        cast(count(*) as {{ dbt.type_bigint() }}) as customers,
        cast(sum(is_new) as {{ dbt.type_bigint() }}) as new_customers,
        {{ round_to("sum(revenue_trailing_year)", 2) }} as revenue_trailing_year,
        {{ round_to("sum(annual_potential)", 2) }} as annual_potential,
        {{ round_to("avg(rational_loyalty)", 2) }} as mean_rational_loyalty,
        {{ round_to("avg(emotional_loyalty)", 2) }} as mean_emotional_loyalty,
        cast(sum(case when quadrant = 'ambassador' then 1 else 0 end) as {{ dbt.type_bigint() }}) as ambassadors,
        cast(sum(case when status = 'green' then 1 else 0 end) as {{ dbt.type_bigint() }}) as customers_green,
        cast(sum(case when status = 'yellow' then 1 else 0 end) as {{ dbt.type_bigint() }}) as customers_yellow,
        cast(sum(case when status = 'red' then 1 else 0 end) as {{ dbt.type_bigint() }}) as customers_red
    from customer_periods
    group by period_month, period_end_date, segment, country
)

select
    {{ dbt.hash("cast(period_month as " ~ dbt.type_string() ~ ") || '|' || segment || '|' || country") }} as platform_key,
    grouped.*,
    {{ safe_ratio('customers', 'sum(customers) over (partition by period_month)') }} as breadth_share,
    {{ safe_ratio('revenue_trailing_year', 'annual_potential') }} as height_potential_share,
    {{ round_to("(mean_rational_loyalty + mean_emotional_loyalty) / 2", 1) }} as depth_loyalty,
    {{ safe_ratio('ambassadors', 'customers') }} as ambassador_share
from grouped
